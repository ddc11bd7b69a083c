import { api, bytes, esc, ms, pct } from '../lib.js';

/** All models: originals with their variants underneath. */
export async function modelsPage(view) {
  const { models } = await api('/api/models');
  const originals = models.filter((m) => !m.sourceModelId);
  const variantsOf = (id) => models.filter((m) => m.sourceModelId === id);
  view.innerHTML = `<h1>Models</h1>
    <p><a href="#/compress">Compress a model for a device profile →</a></p>
    <table><thead><tr><th>Model</th><th>Variant</th><th>Profile</th><th class="num">Size</th><th>Inputs</th><th>Created</th></tr></thead><tbody>
    ${originals
      .flatMap((m) => [m, ...variantsOf(m.id)])
      .map(
        (
          m,
        ) => `<tr><td>${m.sourceModelId ? '&nbsp;&nbsp;↳ ' : ''}<a href="#/models/${encodeURIComponent(m.id)}">${esc(m.name)}</a>
          <div class="muted">${esc(m.id)}</div></td><td>${esc(m.variant)}</td><td>${esc(m.profile ?? '—')}</td>
          <td class="num">${bytes(m.size)}</td>
          <td>${m.inputs.map((i) => `${esc(i.name)} [${esc(i.shape.join(','))}]`).join(', ')}</td><td>${esc(m.createdAt)}</td></tr>`,
      )
      .join('')}</tbody></table>`;
}

/** Accuracy against latency, one point per variant, as a small SVG scatter plot. */
function scatter(points) {
  const W = 560;
  const H = 260;
  const P = 48;
  const usable = points.filter((p) => p.x != null && p.y != null);
  if (usable.length === 0) return '<p class="muted">No measured variants yet.</p>';
  const xs = usable.map((p) => p.x);
  const ys = usable.map((p) => p.y);
  const [x0, x1] = [0, Math.max(...xs) * 1.15 || 1];
  const [y0, y1] = [Math.min(...ys) - 1, Math.max(...ys) + 0.5];
  const sx = (x) => P + ((x - x0) / (x1 - x0)) * (W - 2 * P);
  const sy = (y) => H - P + ((y0 - y) / (y1 - y0)) * (H - 2 * P);
  const dots = usable
    .map(
      (p) => `<circle cx="${sx(p.x)}" cy="${sy(p.y)}" r="5" fill="${p.accepted ? '#2f5bd3' : '#c62828'}"/>
      <text x="${sx(p.x) + 8}" y="${sy(p.y) - 6}" font-size="12">${esc(p.label)}</text>`,
    )
    .join('');
  return `<svg class="scatter" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">
    <line x1="${P}" y1="${H - P}" x2="${W - P}" y2="${H - P}" stroke="#999"/><line x1="${P}" y1="${P}" x2="${P}" y2="${H - P}" stroke="#999"/>
    <text x="${W / 2}" y="${H - 12}" font-size="12" text-anchor="middle">p50 latency, ms (this machine, batch 1)</text>
    <text x="14" y="${H / 2}" font-size="12" transform="rotate(-90 14 ${H / 2})" text-anchor="middle">top-1 accuracy %</text>
    <text x="${P}" y="${H - P + 16}" font-size="11">${x0}</text><text x="${W - P}" y="${H - P + 16}" font-size="11" text-anchor="end">${x1.toFixed(3)}</text>
    <text x="${P - 6}" y="${sy(y1) + 4}" font-size="11" text-anchor="end">${y1.toFixed(1)}</text>
    <text x="${P - 6}" y="${sy(y0) + 4}" font-size="11" text-anchor="end">${y0.toFixed(1)}</text>
    ${dots}</svg>`;
}

/** One model family: the variants side by side with size, accuracy, latency and device figures. */
export async function modelPage(view, id) {
  const { variants, root } = await api(`/api/models/${encodeURIComponent(id)}/variants`);
  const original = variants.find((v) => v.id === root);
  const metric = (v, key) => v.metrics?.[key] ?? null;
  const rows = variants.map((v) => {
    const devices = Object.entries(v.deviceLatency)
      .map(([profile, m]) => `${esc(profile)}: ${ms(m.p50Ms, 3)} ms (${m.devices})`)
      .join('<br>');
    return `<tr><td><a href="#/models/${encodeURIComponent(v.id)}">${esc(v.variant)}</a><div class="muted">${esc(v.id)}</div></td>
      <td>${esc(v.profile ?? '—')}</td><td class="num">${bytes(v.size)}</td>
      <td class="num">${v.id === root ? '1.000' : ms(v.size / original.size, 3)}</td>
      <td class="num">${pct(metric(v, 'accuracy'))}</td><td class="num">${pct(metric(v, 'agreement'))}</td>
      <td class="num">${ms(metric(v, 'latencyMs'), 4)}</td><td class="num">${ms(metric(v, 'latencyRatio'), 3)}</td>
      <td>${v.metrics ? (v.metrics.accepted ? 'yes' : '<span class="error">no</span>') : '—'}</td>
      <td>${(v.metrics?.keptFloat ?? []).length || '—'}</td><td>${devices || '—'}</td></tr>`;
  });
  const points = variants
    .filter((v) => v.metrics)
    .map((v) => ({
      x: v.metrics.latencyMs,
      y: v.metrics.accuracy,
      label: v.variant,
      accepted: v.metrics.accepted,
    }));
  view.innerHTML = `<h1>${esc(original?.name ?? id)} <span class="muted">${variants.length} variant(s)</span></h1>
    <p class="muted">Variants are measured against the original on held-out data. Accuracy and agreement in %, latency p50 at batch 1.</p>
    <table><thead><tr><th>Variant</th><th>Profile</th><th class="num">Size</th><th class="num">Size ×</th><th class="num">Accuracy</th>
    <th class="num">Agreement</th><th class="num">p50 ms</th><th class="num">Latency ×</th><th>In budget</th><th>Float nodes</th>
    <th>Measured on devices (p50)</th></tr></thead><tbody>${rows.join('')}</tbody></table>
    <h2>Accuracy against latency</h2>${scatter(points)}`;
}
