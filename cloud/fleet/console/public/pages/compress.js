import { api, esc, ms, onFleetEvent, pct } from '../lib.js';

function progressBar(job) {
  const percent = Math.round((job.progress ?? 0) * 100);
  return `<div class="progress"><div class="bar" style="width:${percent}%"></div></div>
    <p id="job-status" data-status="${esc(job.status)}">${esc(job.status)} · ${esc(job.stage ?? 'starting')} · ${percent} %
    ${job.error ? `<span class="error">${esc(job.error)}</span>` : ''}</p>`;
}

function resultTable(job) {
  if (!job.result) return '';
  const r = job.result;
  return `<table><thead><tr><th>Variant</th><th class="num">Size ×</th><th class="num">Accuracy</th><th class="num">Agreement</th>
    <th class="num">p50 ms</th><th class="num">Latency ×</th><th>In budget</th></tr></thead><tbody>
    ${r.variants
      .map(
        (v) => `<tr><td><a href="#/models/${encodeURIComponent(r.modelIds[v.name])}">${esc(v.name)}</a></td>
        <td class="num">${ms(v.sizeRatio, 3)}</td><td class="num">${pct(v.accuracy)}</td><td class="num">${pct(v.agreement)}</td>
        <td class="num">${ms(v.latencyMs, 4)}</td><td class="num">${ms(v.latencyRatio, 3)}</td><td>${v.accepted ? 'yes' : 'no'}</td></tr>`,
      )
      .join('')}</tbody></table>
    <p>Recommended for <b>${esc(r.profile)}</b>: <b>${esc(r.recommended ?? 'none within the budget')}</b></p>`;
}

/** Start a compression job for a model and a profile, and watch it run. */
export async function compressPage(view) {
  const [{ models }, { profiles }, { jobs }] = await Promise.all([
    api('/api/models'),
    api('/api/profiles'),
    api('/api/jobs'),
  ]);
  const originals = models.filter((m) => !m.sourceModelId);
  view.innerHTML = `<h1>Compress</h1>
    <form class="panel" id="compress-form">
      <label>Model <select id="c-model">${originals.map((m) => `<option value="${esc(m.id)}">${esc(m.name)} · ${esc(m.id)}</option>`).join('')}</select></label>
      <label>Profile <select id="c-profile">${profiles.map((p) => `<option value="${esc(p.name)}">${esc(p.name)}</option>`).join('')}</select></label>
      <label>Data <select id="c-data"><option value="mnist">built-in MNIST</option><option value="upload">upload .npy…</option></select></label>
      <span id="c-upload" hidden><label>Inputs (.npy) <input type="file" id="c-x" accept=".npy"></label> <label>Labels (.npy) <input type="file" id="c-y" accept=".npy"></label></span>
      <label>Max accuracy drop <input id="c-drop" type="number" min="0" step="0.1" value="1" size="4"></label>
      <label>Epochs <input id="c-epochs" type="number" min="1" value="4" size="3"></label>
      <button type="submit" id="compress-button" ${originals.length ? '' : 'disabled'}>Start</button>
    </form>
    <div id="job"></div>
    <h2>Recent jobs</h2>
    <table><thead><tr><th>Job</th><th>Status</th><th>Model</th><th>Profile</th><th>Created</th></tr></thead><tbody>
    ${jobs.map((j) => `<tr><td>${esc(j.id)}</td><td>${esc(j.status)}</td><td>${esc(j.params.model)}</td><td>${esc(j.params.profile)}</td><td>${esc(j.createdAt)}</td></tr>`).join('')}
    </tbody></table>`;
  document.getElementById('c-data').addEventListener('change', (e) => {
    document.getElementById('c-upload').hidden = e.target.value !== 'upload';
  });
  let current;
  const show = async () => {
    if (!current) return;
    const job = await api(`/api/jobs/${current}`);
    document.getElementById('job').innerHTML =
      `<h2>Job ${esc(job.id)}</h2>${progressBar(job)}${resultTable(job)}`;
  };
  const upload = async (input) => {
    const file = input.files?.[0];
    if (!file) return undefined;
    const body = await file.arrayBuffer();
    const stored = await api('/api/datasets', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/octet-stream' },
    });
    return stored.sha256;
  };
  document.getElementById('compress-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const useUpload = document.getElementById('c-data').value === 'upload';
      const data = useUpload ? await upload(document.getElementById('c-x')) : 'mnist';
      const labels = useUpload ? await upload(document.getElementById('c-y')) : undefined;
      const job = await api('/api/jobs', {
        method: 'POST',
        body: JSON.stringify({
          model: document.getElementById('c-model').value,
          profile: document.getElementById('c-profile').value,
          data,
          labels,
          maxAccuracyDrop: Number(document.getElementById('c-drop').value),
          epochs: Number(document.getElementById('c-epochs').value),
        }),
      });
      current = job.id;
      await show();
    } catch (error) {
      document.getElementById('job').innerHTML = `<p class="error">${esc(error.message)}</p>`;
    }
  });
  return onFleetEvent((e) => e.type === 'job' && e.jobId === current && show());
}
