// Shared helpers of the console: API calls with the stored token, live events, formatting.
const TOKEN_KEY = 'fleetml.token';

export function token() {
  const fromHash = /token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(fromHash[1]));
    history.replaceState(null, '', `${location.pathname}#/`);
  }
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  localStorage.setItem(TOKEN_KEY, value);
}

export async function api(path, options = {}) {
  const isJson =
    options.body !== undefined && !(options.body instanceof Blob) && !(options.body instanceof ArrayBuffer);
  const response = await fetch(path, {
    ...options,
    headers: {
      authorization: `Bearer ${token()}`,
      ...(isJson ? { 'content-type': 'application/json' } : {}),
      ...(options.headers ?? {}),
    },
  });
  if (response.status === 401) {
    document.getElementById('login').showModal();
    throw new Error('sign in needed');
  }
  const body = await response.json();
  if (!response.ok) throw new Error(`${body.error?.code ?? response.status}: ${body.error?.message ?? ''}`);
  return body;
}

let source;
const listeners = new Set();
/** Live fleet events (device, rollout, job) from the server; one connection per tab. */
export function onFleetEvent(listener) {
  listeners.add(listener);
  if (!source) {
    source = new EventSource(`/api/stream?token=${encodeURIComponent(token())}`);
    for (const type of ['device', 'rollout', 'job']) {
      source.addEventListener(type, (e) => {
        const event = JSON.parse(e.data);
        for (const l of listeners) l(event);
      });
    }
  }
  return () => listeners.delete(listener);
}

export const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
export const ms = (v, digits = 2) => (v == null ? '—' : Number(v).toFixed(digits));
export const pct = (v) => (v == null ? '—' : `${Number(v).toFixed(2)}`);
export const bytes = (n) =>
  n == null ? '—' : n > 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;

export function statusPill(d) {
  if (d.phase === 'failed') return '<span class="pill failed">failed</span>';
  return d.online ? '<span class="pill online">online</span>' : '<span class="pill offline">offline</span>';
}

export function pill(text, kind = text) {
  return `<span class="pill ${esc(kind)}">${esc(text)}</span>`;
}

/** Debounces refreshes triggered by bursts of live events; `.cancel()` drops a pending call. */
export function debounce(fn, waitMs = 300) {
  let timer;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), waitMs);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}
