import { api, debounce, esc, ms, onFleetEvent, statusPill } from '../lib.js';

function deviceRow(d) {
  return `<tr data-id="${esc(d.id)}">
    <td><input type="checkbox" class="pick" value="${esc(d.id)}"></td>
    <td><a href="#/device/${encodeURIComponent(d.id)}">${esc(d.name)}</a><div class="muted">${esc(d.id)}</div></td>
    <td>${statusPill(d)}</td><td>${esc(d.profile ?? '—')}</td>
    <td>${d.activeModel ? `${esc(d.activeModel.name)} <span class="muted">${esc(d.activeModel.variant)}</span>` : '—'}</td>
    <td>${esc(d.phase ?? '—')}</td>
    <td class="num p50">${ms(d.p50Ms, 3)}</td><td class="num p99">${ms(d.p99Ms, 3)}</td>
    <td class="num">${d.cpuLoad == null ? '—' : d.cpuLoad.toFixed(0)}</td>
    <td class="num">${d.tempC == null ? '—' : d.tempC.toFixed(1)}</td><td>${esc(d.ep ?? '—')}</td></tr>`;
}

let latencyChart;
const COLORS = ['#2f5bd3', '#c62828', '#2e7d32', '#e09b1a', '#6a1b9a', '#00838f'];

/**
 * Fleet-wide real-traffic latency over time: p50 (solid) and p99 (dashed) per group (release or
 * profile), from the agents' inference-service sketches merged in the cloud.
 */
function drawFleetLatency(el, series) {
  const times = [...new Set(series.flatMap((g) => g.points.map((p) => p.at)))].sort();
  const xs = times.map((t) => Date.parse(t) / 1000);
  const data = [xs];
  const lines = [{}];
  series.forEach((g, i) => {
    const byAt = new Map(g.points.map((p) => [p.at, p]));
    const color = COLORS[i % COLORS.length];
    data.push(times.map((t) => byAt.get(t)?.p50Ms ?? null));
    lines.push({ label: `${g.key || '—'} p50`, stroke: color });
    data.push(times.map((t) => byAt.get(t)?.p99Ms ?? null));
    lines.push({ label: `${g.key || '—'} p99`, stroke: color, dash: [6, 4] });
  });
  latencyChart?.destroy();
  latencyChart = new uPlot(
    { width: Math.min(1150, el.clientWidth || 900), height: 240, series: lines, axes: [{}, { label: 'ms' }] },
    data,
    el,
  );
  return times.length;
}

/** How the devices' p99s spread: device counts per p99 band (real traffic). */
function distribution(devices) {
  const bands = [0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000, Infinity];
  const counts = bands.map(() => 0);
  for (const d of devices) if (d.p99Ms != null) counts[bands.findIndex((b) => d.p99Ms <= b)]++;
  let lower = 0;
  return bands
    .map((b, i) => {
      const label = b === Infinity ? `> ${lower} ms` : `${lower}–${b} ms`;
      lower = b;
      return counts[i] ? `<tr><td>${label}</td><td class="num">${counts[i]}</td></tr>` : '';
    })
    .join('');
}

async function renderLatency(by) {
  const [traffic, devices, probe] = await Promise.all([
    api(`/api/fleet/serving?window=1h&by=${by}`),
    api('/api/fleet/serving?window=1h&by=device'),
    api('/api/fleet/latency?window=1h&by=profile'),
  ]);
  const total = traffic.groups.reduce((n, g) => n + g.requests, 0);
  const errors = traffic.groups.reduce((n, g) => n + g.errors, 0);
  const el = document.getElementById('fleet-latency-chart');
  if (!el) return;
  const points = traffic.series.length ? drawFleetLatency(el, traffic.series) : 0;
  if (!traffic.series.length) el.innerHTML = '<p class="muted">no inference traffic in the last hour</p>';
  const info = document.getElementById('fleet-latency-points');
  info.dataset.points = String(points);
  info.dataset.requests = String(total);
  info.textContent =
    `${total} requests from ${devices.groups.length} devices in the last hour · ${errors} errors` +
    (total ? ` (${((errors / total) * 100).toFixed(2)} %)` : '');
  document.getElementById('fleet-latency-groups').innerHTML = traffic.groups
    .map(
      (
        g,
      ) => `<tr><td>${esc(g.key || '—')}</td><td class="num">${g.requests}</td><td class="num">${(g.errorRate * 100).toFixed(2)}</td>
      <td class="num">${ms(g.p50Ms, 3)}</td><td class="num">${ms(g.p90Ms, 3)}</td><td class="num">${ms(g.p99Ms, 3)}</td><td>real traffic</td></tr>`,
    )
    .concat(
      probe.groups.map(
        (
          g,
        ) => `<tr class="muted"><td>${esc(g.key || '—')}</td><td class="num">${g.count ?? '—'}</td><td class="num">—</td>
        <td class="num">${ms(g.p50Ms, 3)}</td><td class="num">${ms(g.p90Ms, 3)}</td><td class="num">${ms(g.p99Ms, 3)}</td><td>probe (fallback, synthetic inputs)</td></tr>`,
      ),
    )
    .join('');
  document.getElementById('fleet-latency-spread').innerHTML =
    distribution(devices.groups) || '<tr><td colspan="2" class="muted">no devices with traffic</td></tr>';
}

/** How many device rows the fleet page shows at a time; the server filters and counts the rest. */
const PAGE_SIZE = 100;

function devicesPath(view) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(view.offset) });
  if (view.q) params.set('q', view.q);
  if (view.online) params.set('online', view.online);
  return `/api/devices?${params}`;
}

/** Draws one page of the device table and its pager; keeps ticks made on other pages. */
function drawDevices(page, view, picked) {
  const body = document.querySelector('#devices tbody');
  if (!body) return;
  body.innerHTML = page.devices.map(deviceRow).join('');
  for (const box of document.querySelectorAll('.pick')) box.checked = picked.has(box.value);
  const last = Math.min(page.total, view.offset + page.devices.length);
  const pager = document.getElementById('devices-pager');
  pager.dataset.total = String(page.total);
  pager.dataset.shown = String(page.devices.length);
  document.getElementById('devices-range').textContent = page.total
    ? `${view.offset + 1}–${last} of ${page.total} (${page.online} online) · ${picked.size} selected`
    : `no devices match · ${picked.size} selected`;
  document.getElementById('devices-prev').disabled = view.offset === 0;
  document.getElementById('devices-next').disabled = last >= page.total;
}

/** Fleet overview: devices with status, profile, model, latency, a page at a time; deploy to a selection. */
export async function fleetPage(view) {
  const list = { offset: 0, q: '', online: '' };
  const picked = new Set();
  const [first, { models }] = await Promise.all([api(devicesPath(list)), api('/api/models')]);
  view.innerHTML = `
    <h1>Fleet <span class="muted">${first.total} devices · ${first.online} online</span></h1>
    <form class="panel" id="deploy-form">
      <label>Model <select id="deploy-model">${models
        .map((m) => `<option value="${esc(m.id)}">${esc(m.name)} · ${esc(m.variant)} · ${esc(m.id)}</option>`)
        .join('')}</select></label>
      <label>Canary % <input id="deploy-canary" type="number" min="0" max="100" value="0" size="4"></label>
      <label>Wave size <input id="deploy-wave" type="number" min="0" value="0" size="4"></label>
      <label>p99 objective ms <input id="deploy-latency" type="number" min="0" step="any" placeholder="none" size="6"></label>
      <button type="submit" id="deploy-button" ${models.length ? '' : 'disabled'}>Deploy to selected</button>
      <span id="deploy-result" class="muted"></span>
    </form>
    <h2>Latency users get <span class="muted">(real traffic, last hour)</span>
      <select id="fleet-latency-by"><option value="release">by release</option><option value="profile">by profile</option></select></h2>
    <div class="chart" id="fleet-latency-chart"></div>
    <p class="muted" id="fleet-latency-points" data-source="traffic" data-points="0"></p>
    <table id="fleet-latency-table"><thead><tr><th>Group</th><th class="num">Requests</th><th class="num">Errors %</th>
      <th class="num">p50 ms</th><th class="num">p90 ms</th><th class="num">p99 ms</th><th>Source</th></tr></thead>
      <tbody id="fleet-latency-groups"></tbody></table>
    <h3>Spread across devices (p99, real traffic)</h3>
    <table><thead><tr><th>p99</th><th class="num">Devices</th></tr></thead><tbody id="fleet-latency-spread"></tbody></table>
    <h2>Devices</h2>
    <div class="panel" id="devices-pager">
      <label>Search <input id="devices-search" type="search" placeholder="name, id, profile, tag, model"></label>
      <label>Status <select id="devices-online"><option value="">all</option><option value="true">online</option><option value="false">offline</option></select></label>
      <button type="button" id="devices-prev">Previous</button> <button type="button" id="devices-next">Next</button>
      <span class="muted" id="devices-range"></span>
    </div>
    <table id="devices"><thead><tr>
      <th><input type="checkbox" id="select-all" title="select the devices on this page"></th><th>Device</th><th>Status</th><th>Profile</th><th>Model</th><th>Phase</th>
      <th class="num">p50 ms</th><th class="num">p99 ms</th><th class="num">CPU %</th><th class="num">Temp °C</th><th>EP</th>
    </tr></thead><tbody></tbody></table>`;
  let shown = first;
  drawDevices(shown, list, picked);

  const reload = async () => {
    shown = await api(devicesPath(list));
    drawDevices(shown, list, picked);
  };
  document.getElementById('devices-prev').addEventListener('click', () => {
    list.offset = Math.max(0, list.offset - PAGE_SIZE);
    void reload();
  });
  document.getElementById('devices-next').addEventListener('click', () => {
    list.offset += PAGE_SIZE;
    void reload();
  });
  const search = debounce(() => {
    list.q = document.getElementById('devices-search').value.trim();
    list.offset = 0;
    void reload();
  }, 300);
  document.getElementById('devices-search').addEventListener('input', search);
  document.getElementById('devices-online').addEventListener('change', (e) => {
    list.online = e.target.value;
    list.offset = 0;
    void reload();
  });
  document.querySelector('#devices tbody').addEventListener('change', (e) => {
    if (!e.target.classList.contains('pick')) return;
    if (e.target.checked) picked.add(e.target.value);
    else picked.delete(e.target.value);
    drawDevices(shown, list, picked);
  });

  const by = document.getElementById('fleet-latency-by');
  by.addEventListener('change', () => void renderLatency(by.value));
  await renderLatency(by.value);

  document.getElementById('select-all').addEventListener('change', (e) => {
    for (const box of document.querySelectorAll('.pick')) {
      box.checked = e.target.checked;
      if (box.checked) picked.add(box.value);
      else picked.delete(box.value);
    }
    drawDevices(shown, list, picked);
  });
  document.getElementById('deploy-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const result = document.getElementById('deploy-result');
    if (picked.size === 0) {
      result.innerHTML = '<span class="error">select at least one device</span>';
      return;
    }
    const latency = document.getElementById('deploy-latency').value;
    try {
      const rollout = await api('/api/rollouts', {
        method: 'POST',
        body: JSON.stringify({
          model: document.getElementById('deploy-model').value,
          devices: [...picked],
          policy: {
            canaryPercent: Number(document.getElementById('deploy-canary').value),
            waveSize: Number(document.getElementById('deploy-wave').value),
            latencyObjectiveMs: latency ? Number(latency) : null,
          },
        }),
      });
      location.hash = `#/rollouts/${rollout.id}`;
    } catch (error) {
      result.innerHTML = `<span class="error">${esc(error.message)}</span>`;
    }
  });

  // Live: refresh the page of rows (not the form) when devices report.
  const refresh = debounce(() => void reload(), 500);
  const refreshLatency = debounce(() => renderLatency(by.value), 2000);
  const stop = onFleetEvent((e) => {
    if (e.type !== 'device') return;
    if (e.kind === 'telemetry') refreshLatency();
    else refresh();
  });
  return () => {
    stop();
    latencyChart?.destroy();
    latencyChart = undefined;
  };
}
