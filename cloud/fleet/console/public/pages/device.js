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

/**
 * Where the answering model changed between two consecutive points: the chart breaks its lines
 * there (a null point) and draws a labelled vertical marker, so no line runs across models.
 */
export function modelSegments(series) {
  const xs = [];
  const ys = [[], [], []];
  const changes = [];
  series.forEach((p, i) => {
    const x = Date.parse(p.at) / 1000;
    const before = series[i - 1];
    if (before && before.modelId !== p.modelId) {
      const at = (Date.parse(before.at) / 1000 + x) / 2;
      changes.push({ at, from: before.modelName ?? before.modelId, to: p.modelName ?? p.modelId });
      xs.push(at);
      for (const y of ys) y.push(null);
    }
    xs.push(x);
    ys[0].push(p.p50Ms);
    ys[1].push(p.p90Ms);
    ys[2].push(p.p99Ms);
  });
  return { data: [xs, ...ys], changes };
}

function drawModelChanges(u, changes) {
  const { ctx, bbox } = u;
  ctx.save();
  ctx.strokeStyle = '#6b7385';
  ctx.fillStyle = '#1d2433';
  ctx.setLineDash([4, 4]);
  ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
  for (const c of changes) {
    const x = Math.round(u.valToPos(c.at, 'x', true));
    ctx.beginPath();
    ctx.moveTo(x, bbox.top);
    ctx.lineTo(x, bbox.top + bbox.height);
    ctx.stroke();
    ctx.fillText(`→ ${c.to ?? 'none'}`, x + 4, bbox.top + 14 * devicePixelRatio);
  }
  ctx.restore();
}

function drawLatency(el, series) {
  const { data, changes } = modelSegments(series);
  el.dataset.modelChanges = String(changes.length);
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
      hooks: { draw: [(u) => drawModelChanges(u, changes)] },
    },
    data,
    el,
  );
  return changes;
}

const modelChangeList = (changes) =>
  changes.length === 0
    ? ''
    : `<ul class="model-changes" id="model-changes">${changes
        .map(
          (c) =>
            `<li>${esc(new Date(c.at * 1000).toLocaleTimeString())}: model changed from ${esc(c.from ?? 'none')} to ${esc(c.to ?? 'none')}</li>`,
        )
        .join('')}</ul>`;

const tagsForm = (d, note) => `
      <form class="inline" id="tags-form">
        <label for="tags-input">Tags</label>
        <input id="tags-input" value="${esc(d.tags.join(', '))}" placeholder="kitchen, floor-2" size="40">
        <button type="submit">Save tags</button>
        <span class="${note.error ? 'error' : 'muted'}" id="tags-status">${esc(note.text)}</span>
      </form>`;

/** Saves the comma-separated tags; the note says what happened. */
async function saveTags(id, text) {
  const tags = text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  try {
    const updated = await api(`/api/devices/${encodeURIComponent(id)}`, {
      method: 'PATCH',
      body: JSON.stringify({ tags }),
    });
    return { text: `saved: ${updated.tags.join(', ') || 'no tags'}`, error: false };
  } catch (error) {
    return { text: error.message, error: true };
  }
}

/** One device: hardware, benchmark, latency over time, recent events; live. */
export async function devicePage(view, id) {
  // Set when the user leaves: a render in flight or a pending refresh then draws nothing.
  let stopped = false;
  let tagNote = { text: 'deploy --tag selects devices by them', error: false };
  const render = async () => {
    if (stopped) return;
    const [d, latency, events, series, traffic] = await Promise.all([
      api(`/api/devices/${encodeURIComponent(id)}`),
      api(`/api/devices/${encodeURIComponent(id)}/latency?window=24h`),
      api(`/api/devices/${encodeURIComponent(id)}/events`),
      api(`/api/fleet/devices/${encodeURIComponent(id)}/series?window=24h`),
      api(`/api/fleet/serving?window=1h&by=fleet&step=60&device=${encodeURIComponent(id)}`),
    ]);
    if (stopped) return;
    // Live refreshes come every few seconds: keep what the user is typing in the tags field.
    const typing = document.activeElement?.id === 'tags-input' ? document.activeElement.value : null;
    const t = traffic.groups[0];
    const servingPoints = traffic.series[0]?.points ?? [];
    const b = latency.bench;
    view.innerHTML = `
      <h1>${esc(d.name)} ${statusPill(d)}</h1>
      <p class="muted">${esc(d.id)} · ${esc(d.cpuModel)} · ${esc(d.arch)} · ${esc(d.hardware.cpuCores)} cores ·
        profile ${esc(d.profile ?? '—')} · providers: ${esc(d.executionProviders.join(', '))}</p>
      ${tagsForm(d, tagNote)}
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
      <p class="muted" id="latency-points" data-points="${latency.series.length}">${latency.series.length} points; dashed lines mark where the model changed</p>
      <div id="model-changes-slot"></div>
      <h2>Temperature and CPU load (per ${esc(series.resolution)})</h2>
      <div class="chart" id="health-chart"></div>
      <h2>Events</h2>
      <table id="events"><thead><tr><th>At</th><th>Level</th><th>Code</th><th>Message</th></tr></thead><tbody>
      ${
        events.events
          .slice(0, 20)
          .map(
            (e) =>
              `<tr><td>${esc(e.at)}</td><td>${esc(e.level)}</td><td>${esc(e.code)}</td><td class="message">${esc(e.message)}</td></tr>`,
          )
          .join('') || '<tr><td colspan="4" class="muted">none</td></tr>'
      }
      </tbody></table>`;
    const changes = drawLatency(document.getElementById('latency-chart'), latency.series);
    document.getElementById('model-changes-slot').innerHTML = modelChangeList(changes);
    const tagsInput = document.getElementById('tags-input');
    if (typing !== null) {
      tagsInput.value = typing;
      tagsInput.focus();
    }
    document.getElementById('tags-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      tagNote = await saveTags(id, tagsInput.value);
      tagsInput.blur();
      await render();
    });
    if (servingPoints.length) drawServing(document.getElementById('serving-chart'), servingPoints);
    drawHealth(document.getElementById('health-chart'), series.points);
  };
  await render();
  const refresh = debounce(render, 400);
  const stop = onFleetEvent((e) => e.type === 'device' && e.deviceId === id && refresh());
  return () => {
    stopped = true;
    refresh.cancel();
    stop();
    chart?.destroy();
    healthChart?.destroy();
    servingChart?.destroy();
    servingChart = undefined;
    chart = undefined;
    healthChart = undefined;
  };
}
