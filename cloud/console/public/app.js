// fleetml console: a small single-page app over the JSON API; no build step.
const view = document.getElementById('view');
const TOKEN_KEY = 'fleetml.token';

function token() {
  const fromHash = /token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(fromHash[1]));
    history.replaceState(null, '', location.pathname + '#/');
  }
  return localStorage.getItem(TOKEN_KEY);
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: {
      authorization: `Bearer ${token()}`,
      'content-type': 'application/json',
      ...(options.headers ?? {}),
    },
  });
  if (response.status === 401) {
    askToken();
    throw new Error('sign in needed');
  }
  const body = await response.json();
  if (!response.ok) throw new Error(`${body.error?.code ?? response.status}: ${body.error?.message ?? ''}`);
  return body;
}

function askToken() {
  const dialog = document.getElementById('login');
  if (!dialog.open) dialog.showModal();
}
document.getElementById('login-form').addEventListener('submit', () => {
  localStorage.setItem(TOKEN_KEY, document.getElementById('login-token').value.trim());
  route();
});

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const ms = (v) => (v == null ? '—' : `${Number(v).toFixed(2)}`);

function statusPill(d) {
  if (d.phase === 'failed') return '<span class="pill failed">failed</span>';
  return d.online ? '<span class="pill online">online</span>' : '<span class="pill offline">offline</span>';
}

async function fleetPage() {
  const { devices } = await api('/api/devices');
  const { models } = await api('/api/models');
  view.innerHTML = `
    <h1>Fleet <span class="muted">(${devices.length} devices)</span></h1>
    <form class="inline" id="deploy-form">
      <label>Deploy</label>
      <select id="deploy-model">${models.map((m) => `<option value="${esc(m.id)}">${esc(m.name)} · ${esc(m.variant)} · ${esc(m.id)}</option>`).join('')}</select>
      <label>to all selected devices</label>
      <button type="submit" ${models.length ? '' : 'disabled'}>Deploy</button>
      <span id="deploy-result" class="muted"></span>
    </form>
    <table id="devices"><thead><tr>
      <th><input type="checkbox" id="select-all" checked></th><th>Device</th><th>Status</th><th>Profile</th><th>Model</th><th>Phase</th>
      <th class="num">p50 ms</th><th class="num">p99 ms</th><th class="num">CPU %</th><th class="num">Temp °C</th><th>EP</th>
    </tr></thead><tbody>
    ${devices
      .map(
        (d) => `<tr data-id="${esc(d.id)}">
        <td><input type="checkbox" class="pick" value="${esc(d.id)}" checked></td>
        <td><a href="#/device/${encodeURIComponent(d.id)}">${esc(d.name)}</a><div class="muted">${esc(d.id)}</div></td>
        <td>${statusPill(d)}</td><td>${esc(d.profile ?? '—')}</td>
        <td>${d.activeModel ? `${esc(d.activeModel.name)} <span class="muted">${esc(d.activeModel.variant)}</span>` : '—'}</td>
        <td>${esc(d.phase ?? '—')}</td>
        <td class="num p50">${ms(d.p50Ms)}</td><td class="num p99">${ms(d.p99Ms)}</td>
        <td class="num">${d.cpuLoad == null ? '—' : d.cpuLoad.toFixed(0)}</td>
        <td class="num">${d.tempC == null ? '—' : d.tempC.toFixed(1)}</td><td>${esc(d.ep ?? '—')}</td></tr>`,
      )
      .join('')}
    </tbody></table>`;
  document.getElementById('select-all').addEventListener('change', (e) => {
    for (const box of document.querySelectorAll('.pick')) box.checked = e.target.checked;
  });
  document.getElementById('deploy-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const picked = [...document.querySelectorAll('.pick:checked')].map((b) => b.value);
    const result = document.getElementById('deploy-result');
    try {
      const body = await api('/api/deployments', {
        method: 'POST',
        body: JSON.stringify({ model: document.getElementById('deploy-model').value, devices: picked }),
      });
      result.textContent = `target set on ${body.targets.length} device(s)`;
    } catch (error) {
      result.innerHTML = `<span class="error">${esc(error.message)}</span>`;
    }
  });
}

let chart;
async function devicePage(id) {
  const d = await api(`/api/devices/${encodeURIComponent(id)}`);
  const latency = await api(`/api/devices/${encodeURIComponent(id)}/latency?window=24h`);
  const b = latency.bench;
  view.innerHTML = `
    <h1>${esc(d.name)} ${statusPill(d)}</h1>
    <p class="muted">${esc(d.id)} · ${esc(d.cpuModel)} · ${esc(d.arch)} · providers: ${esc(d.executionProviders.join(', '))}</p>
    <div class="cards">
      <div class="card"><div class="label">Model</div><div class="value">${esc(d.activeModel?.name ?? '—')}</div></div>
      <div class="card"><div class="label">Benchmark p50 ms</div><div class="value" id="bench-p50">${ms(b?.p50Ms)}</div></div>
      <div class="card"><div class="label">Benchmark p99 ms</div><div class="value">${ms(b?.p99Ms)}</div></div>
      <div class="card"><div class="label">Throughput /s</div><div class="value">${b ? b.throughput.toFixed(0) : '—'}</div></div>
      <div class="card"><div class="label">Temperature °C</div><div class="value">${d.tempC == null ? '—' : d.tempC.toFixed(1)}</div></div>
    </div>
    ${d.lastError ? `<p class="error">Last error ${esc(d.lastError.code)}: ${esc(d.lastError.message)}</p>` : ''}
    <h2>Inference latency (ms)</h2>
    <div class="chart" id="latency-chart"></div>
    <p class="muted" id="latency-points">${latency.series.length} points</p>`;
  drawLatency(latency.series);
}

function drawLatency(series) {
  const el = document.getElementById('latency-chart');
  if (!el) return;
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

async function modelsPage() {
  const { models } = await api('/api/models');
  view.innerHTML = `<h1>Models</h1><table><thead><tr><th>Id</th><th>Name</th><th>Variant</th><th class="num">Size</th><th>Inputs</th><th>Created</th></tr></thead><tbody>
    ${models
      .map(
        (
          m,
        ) => `<tr><td>${esc(m.id)}</td><td>${esc(m.name)}</td><td>${esc(m.variant)}</td><td class="num">${(m.size / 1024).toFixed(1)} KiB</td>
        <td>${m.inputs.map((i) => `${esc(i.name)} [${esc(i.shape.join(','))}]`).join(', ')}</td><td>${esc(m.createdAt)}</td></tr>`,
      )
      .join('')}</tbody></table>`;
}

let timer;
async function route() {
  clearInterval(timer);
  if (!token()) return askToken();
  const hash = location.hash.replace(/^#/, '') || '/';
  const render = async () => {
    try {
      const device = /^\/device\/(.+)$/.exec(hash);
      if (device) await devicePage(decodeURIComponent(device[1]));
      else if (hash === '/models') await modelsPage();
      else await fleetPage();
    } catch (error) {
      view.innerHTML = `<p class="error">${esc(error.message)}</p>`;
    }
  };
  await render();
  // Device pages refresh live; the fleet page too, unless the user is picking devices.
  if (hash.startsWith('/device/')) timer = setInterval(render, 3000);
}
window.addEventListener('hashchange', route);
route();
