import { api, debounce, esc, ms, onFleetEvent, statusPill } from '../lib.js';

let chart;
let healthChart;
let servingChart;

/** Real-traffic p50/p99 and request rate per minute from the device's inference service. */
function drawServing(el, points) {
  const data = [
    points.map((p) => Date.parse(p.at) / 1000),
    points.map((p) => p.p50Ms),
    points.map((p) => p.p99Ms),
    points.map((p) => p.requests / 60),
  ];
  servingChart?.destroy();
  servingChart = new uPlot(
    {
      width: Math.min(1150, el.clientWidth || 900),
      height: 240,
      series: [
        {},
        { label: 'p50 ms', stroke: '#2f5bd3', scale: 'ms' },
        { label: 'p99 ms', stroke: '#c62828', scale: 'ms' },
        { label: 'requests/s', stroke: '#6b7385', scale: 'rps' },
      ],
      axes: [{}, { scale: 'ms', label: 'ms' }, { scale: 'rps', side: 1, label: '/s', grid: { show: false } }],
    },
    data,
    el,
  );
}

/** Temperature (max per minute) and CPU load from the telemetry rollups. */
function drawHealth(el, points) {
  const data = [
    points.map((p) => Date.parse(p.at) / 1000),
    points.map((p) => p.tempMaxC),
    points.map((p) => p.cpuLoad),
  ];
  healthChart?.destroy();
  healthChart = new uPlot(
    {
      width: Math.min(1150, el.clientWidth || 900),
      height: 200,
      series: [
        {},
        { label: 'temperature °C', stroke: '#c62828', scale: 'C' },
        { label: 'CPU %', stroke: '#6b7385', scale: '%' },
      ],
      axes: [{}, { scale: 'C', label: '°C' }, { scale: '%', side: 1, label: '%', grid: { show: false } }],
    },
    data,
    el,
  );
}

function drawLatency(el, series) {
  const xs = series.map((p) => Date.parse(p.at) / 1000);
  const data = [xs, series.map((p) => p.p50Ms), series.map((p) => p.p90Ms), series.map((p) => p.p99Ms)];
  chart?.destroy();
  chart = new uPlot(
    {
      width: Math.min(1150, el.clientWidth || 900),
      height: 260,
      series: [
        {},
        { label: 'p50', stroke: '#2f5bd3' },
        { label: 'p90', stroke: '#e09b1a' },
        { label: 'p99', stroke: '#c62828' },
      ],
      axes: [{}, { label: 'ms' }],
    },
    data,
    el,
  );
}

/** One device: hardware, benchmark, latency over time, recent events; live. */
export async function devicePage(view, id) {
  const render = async () => {
    const [d, latency, events, series, traffic] = await Promise.all([
      api(`/api/devices/${encodeURIComponent(id)}`),
      api(`/api/devices/${encodeURIComponent(id)}/latency?window=24h`),
      api(`/api/devices/${encodeURIComponent(id)}/events`),
      api(`/api/fleet/devices/${encodeURIComponent(id)}/series?window=24h`),
      api(`/api/fleet/serving?window=1h&by=fleet&step=60&device=${encodeURIComponent(id)}`),
    ]);
    const t = traffic.groups[0];
    const servingPoints = traffic.series[0]?.points ?? [];
    const b = latency.bench;
    view.innerHTML = `
      <h1>${esc(d.name)} ${statusPill(d)}</h1>
      <p class="muted">${esc(d.id)} · ${esc(d.cpuModel)} · ${esc(d.arch)} · ${esc(d.hardware.cpuCores)} cores ·
        profile ${esc(d.profile ?? '—')} · providers: ${esc(d.executionProviders.join(', '))}</p>
      <div class="cards">
        <div class="card"><div class="label">Model</div><div class="value">${esc(d.activeModel?.name ?? '—')}</div>
          <div class="muted">${esc(d.activeModel?.variant ?? '')}</div></div>
        <div class="card"><div class="label">Benchmark p50 ms</div><div class="value" id="bench-p50">${ms(b?.p50Ms, 3)}</div></div>
        <div class="card"><div class="label">Benchmark p99 ms</div><div class="value">${ms(b?.p99Ms, 3)}</div></div>
        <div class="card"><div class="label">Throughput /s</div><div class="value">${b ? b.throughput.toFixed(0) : '—'}</div></div>
        <div class="card"><div class="label">Temperature °C</div><div class="value">${d.tempC == null ? '—' : d.tempC.toFixed(1)}</div></div>
        <div class="card"><div class="label">Phase</div><div class="value">${esc(d.phase ?? '—')}</div></div>
      </div>
      ${d.lastError ? `<p class="error">Last error ${esc(d.lastError.code)}: ${esc(d.lastError.message)}</p>` : ''}
      <h2>Latency of real requests <span class="muted">(inference service, last hour)</span></h2>
      <div class="cards">
        <div class="card"><div class="label">Requests</div><div class="value" id="serving-requests">${t ? t.requests : 0}</div></div>
        <div class="card"><div class="label">Errors %</div><div class="value" id="serving-errors">${t ? (t.errorRate * 100).toFixed(2) : '—'}</div></div>
        <div class="card"><div class="label">p50 ms</div><div class="value" id="serving-p50">${ms(t?.p50Ms, 3)}</div></div>
        <div class="card"><div class="label">p99 ms</div><div class="value" id="serving-p99">${ms(t?.p99Ms, 3)}</div></div>
      </div>
      <div class="chart" id="serving-chart">${servingPoints.length ? '' : '<p class="muted">no inference traffic in the last hour</p>'}</div>
      <h2>Probe latency (ms) <span class="muted">(fallback: a few runs on synthetic inputs per sample, only without traffic)</span></h2>
      <div class="chart" id="latency-chart"></div>
      <p class="muted" id="latency-points" data-points="${latency.series.length}">${latency.series.length} points</p>
      <h2>Temperature and CPU load (per ${esc(series.resolution)})</h2>
      <div class="chart" id="health-chart"></div>
      <h2>Events</h2>
      <table><thead><tr><th>At</th><th>Level</th><th>Code</th><th>Message</th></tr></thead><tbody>
      ${
        events.events
          .slice(0, 20)
          .map(
            (e) =>
              `<tr><td>${esc(e.at)}</td><td>${esc(e.level)}</td><td>${esc(e.code)}</td><td>${esc(e.message)}</td></tr>`,
          )
          .join('') || '<tr><td colspan="4" class="muted">none</td></tr>'
      }
      </tbody></table>`;
    drawLatency(document.getElementById('latency-chart'), latency.series);
    if (servingPoints.length) drawServing(document.getElementById('serving-chart'), servingPoints);
    drawHealth(document.getElementById('health-chart'), series.points);
  };
  await render();
  const refresh = debounce(render, 400);
  const stop = onFleetEvent((e) => e.type === 'device' && e.deviceId === id && refresh());
  return () => {
    stop();
    chart?.destroy();
    healthChart?.destroy();
    servingChart?.destroy();
    servingChart = undefined;
    chart = undefined;
    healthChart = undefined;
  };
}
