import { api, debounce, esc, ms, onFleetEvent, pill } from '../lib.js';

const summary = (r) =>
  Object.entries(r.counts ?? {})
    .map(([k, v]) => `${pill(`${k} ${v}`, k)}`)
    .join(' ');

/** Rollouts, newest first. */
export async function rolloutsPage(view) {
  const { rollouts } = await api('/api/rollouts');
  view.innerHTML = `<h1>Rollouts</h1><table><thead><tr><th>Rollout</th><th>Status</th><th>Model</th><th>Devices</th><th>Created</th><th>By</th></tr></thead><tbody>
    ${
      rollouts
        .map(
          (
            r,
          ) => `<tr><td><a href="#/rollouts/${encodeURIComponent(r.id)}">${esc(r.id)}</a></td><td>${pill(r.status)}</td>
        <td>${esc(r.modelId)}</td><td>${summary(r)}</td><td>${esc(r.createdAt)}</td><td>${esc(r.createdBy)}</td></tr>`,
        )
        .join('') || '<tr><td colspan="6" class="muted">none yet</td></tr>'
    }</tbody></table>`;
}

/** One rollout with live progress per device, and pause / resume / cancel. */
export async function rolloutPage(view, id) {
  const render = async () => {
    const r = await api(`/api/rollouts/${encodeURIComponent(id)}`);
    const done = r.executions.filter((e) => !['queued', 'in_progress'].includes(e.status)).length;
    const percent = r.executions.length ? Math.round((100 * done) / r.executions.length) : 0;
    view.innerHTML = `<h1>Rollout ${esc(r.id)} <span id="rollout-status" data-status="${esc(r.status)}">${pill(r.status)}</span></h1>
      <p class="muted">model ${esc(r.modelId)} · wave ${r.currentWave} · canary ${r.policy.canaryPercent} % · abort above
      ${r.policy.abortFailurePercent} % failures${r.policy.latencyObjectiveMs ? ` or canary p99 > ${r.policy.latencyObjectiveMs} ms` : ''}
      ${r.reason ? `· <b>${esc(r.reason)}</b>` : ''}</p>
      <div class="progress"><div class="bar" style="width:${percent}%"></div></div><p>${done} of ${r.executions.length} devices finished · ${summary(r)}</p>
      <p>${['pause', 'resume', 'cancel'].map((a) => `<button class="secondary" data-action="${a}">${a}</button>`).join(' ')}</p>
      <table><thead><tr><th>Wave</th><th>Device</th><th>Status</th><th class="num">p50 ms</th><th class="num">p99 ms</th><th>Reason</th><th>Rolled back</th></tr></thead><tbody>
      ${r.executions
        .map(
          (
            e,
          ) => `<tr><td>${e.wave}</td><td><a href="#/device/${encodeURIComponent(e.deviceId)}">${esc(e.deviceId)}</a></td>
          <td>${pill(e.status)}</td><td class="num">${ms(e.p50Ms, 3)}</td><td class="num">${ms(e.p99Ms, 3)}</td>
          <td>${esc(e.reason ?? '')}</td><td>${e.rolledBack ? 'yes' : ''}</td></tr>`,
        )
        .join('')}</tbody></table>`;
    for (const button of view.querySelectorAll('button[data-action]')) {
      button.addEventListener('click', async () => {
        try {
          await api(`/api/rollouts/${encodeURIComponent(id)}/${button.dataset.action}`, { method: 'POST' });
          await render();
        } catch (error) {
          alert(error.message);
        }
      });
    }
  };
  await render();
  const refresh = debounce(render, 300);
  return onFleetEvent((e) =>
    (e.type === 'rollout' && e.rolloutId === id) || (e.type === 'device' && e.kind === 'state')
      ? refresh()
      : undefined,
  );
}
