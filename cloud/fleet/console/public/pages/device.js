import { api, debounce, esc, ms, onFleetEvent, statusPill } from '../lib.js';

let chart;
let healthChart;

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
    const [d, latency, events, series] = await Promise.all([
      api(`/api/devices/${encodeURIComponent(id)}`),
      api(`/api/devices/${encodeURIComponent(id)}/latency?window=24h`),
      api(`/api/devices/${encodeURIComponent(id)}/events`),
      api(`/api/fleet/devices/${encodeURIComponent(id)}/series?window=24h`),
    ]);
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
      ${(d.alarms ?? [])
        .map(
          (a) =>
            `<p class="error" data-alarm="${esc(a.code)}">Alarm ${esc(a.code)} (${esc(a.count)}×, last ${esc(a.lastAt)}): ${esc(a.message)}</p>`,
        )
        .join('')}
      ${
        d.fidelity
          ? `<p class="muted" id="golden-fidelity">Golden check on this device: ${esc(d.fidelity.cases)} cases, cosine ${esc(d.fidelity.cosine == null ? '—' : d.fidelity.cosine.toFixed(6))}, max |diff| ${esc(d.fidelity.maxAbs.toExponential(2))}</p>`
          : ''
      }
      <h2>Inference latency (ms)</h2>
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
    drawHealth(document.getElementById('health-chart'), series.points);
  };
  await render();
  const refresh = debounce(render, 400);
  const stop = onFleetEvent((e) => e.type === 'device' && e.deviceId === id && refresh());
  return () => {
    stop();
    chart?.destroy();
    healthChart?.destroy();
    chart = undefined;
    healthChart = undefined;
  };
}
