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

/** Fleet overview: every device with status, profile, model, latency; deploy to a selection. */
export async function fleetPage(view) {
  const [{ devices }, { models }] = await Promise.all([api('/api/devices'), api('/api/models')]);
  const online = devices.filter((d) => d.online).length;
  view.innerHTML = `
    <h1>Fleet <span class="muted">${devices.length} devices · ${online} online</span></h1>
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
    <table id="devices"><thead><tr>
      <th><input type="checkbox" id="select-all"></th><th>Device</th><th>Status</th><th>Profile</th><th>Model</th><th>Phase</th>
      <th class="num">p50 ms</th><th class="num">p99 ms</th><th class="num">CPU %</th><th class="num">Temp °C</th><th>EP</th>
    </tr></thead><tbody>${devices.map(deviceRow).join('')}</tbody></table>`;

  document.getElementById('select-all').addEventListener('change', (e) => {
    for (const box of document.querySelectorAll('.pick')) box.checked = e.target.checked;
  });
  document.getElementById('deploy-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const picked = [...document.querySelectorAll('.pick:checked')].map((b) => b.value);
    const result = document.getElementById('deploy-result');
    if (picked.length === 0) {
      result.innerHTML = '<span class="error">select at least one device</span>';
      return;
    }
    const latency = document.getElementById('deploy-latency').value;
    try {
      const rollout = await api('/api/rollouts', {
        method: 'POST',
        body: JSON.stringify({
          model: document.getElementById('deploy-model').value,
          devices: picked,
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

  // Live: refresh the rows (not the form) when devices report.
  const refresh = debounce(async () => {
    const body = document.querySelector('#devices tbody');
    if (!body) return;
    const checked = new Set([...document.querySelectorAll('.pick:checked')].map((b) => b.value));
    const fresh = await api('/api/devices');
    body.innerHTML = fresh.devices.map(deviceRow).join('');
    for (const box of document.querySelectorAll('.pick')) box.checked = checked.has(box.value);
  }, 500);
  return onFleetEvent((e) => e.type === 'device' && e.kind !== 'telemetry' && refresh());
}
