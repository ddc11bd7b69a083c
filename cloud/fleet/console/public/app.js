// fleetml console: a small single-page app over the JSON API; no build step.

import { esc, setToken, token } from './lib.js';
import { compressPage } from './pages/compress.js';
import { devicePage } from './pages/device.js';
import { fleetPage } from './pages/fleet.js';
import { modelPage, modelsPage } from './pages/models.js';
import { rolloutPage, rolloutsPage } from './pages/rollouts.js';

const view = document.getElementById('view');
const ROUTES = [
  [/^\/device\/(.+)$/, devicePage],
  [/^\/models\/(.+)$/, modelPage],
  [/^\/models$/, modelsPage],
  [/^\/compress$/, compressPage],
  [/^\/rollouts\/(.+)$/, rolloutPage],
  [/^\/rollouts$/, rolloutsPage],
  [/^\/?$/, fleetPage],
];

document.getElementById('login-form').addEventListener('submit', () => {
  setToken(document.getElementById('login-token').value.trim());
  void route();
});

let cleanup = () => {};
// Each navigation gets a number: a page that finishes loading after the user moved on is
// stopped at once and never writes into the view of the page that replaced it.
let navigation = 0;
async function route() {
  cleanup();
  cleanup = () => {};
  const current = ++navigation;
  if (!token()) return document.getElementById('login').showModal();
  const hash = location.hash.replace(/^#/, '') || '/';
  for (const a of document.querySelectorAll('header nav a')) {
    a.classList.toggle(
      'active',
      hash.startsWith(a.getAttribute('href').slice(1)) && a.getAttribute('href') !== '#/'
        ? true
        : hash === '/' && a.getAttribute('href') === '#/',
    );
  }
  const [pattern, page] = ROUTES.find(([re]) => re.test(hash)) ?? ROUTES[ROUTES.length - 1];
  const params = (pattern.exec(hash) ?? []).slice(1).map(decodeURIComponent);
  // Each page draws into its own container: one left behind draws into a detached element.
  const container = document.createElement('div');
  view.replaceChildren(container);
  try {
    const stop = (await page(container, ...params)) ?? (() => {});
    if (current === navigation) cleanup = stop;
    else stop();
  } catch (error) {
    if (current === navigation) container.innerHTML = `<p class="error">${esc(error.message)}</p>`;
  }
}
window.addEventListener('hashchange', route);
void route();
