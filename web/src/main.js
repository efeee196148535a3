// tmsd dashboard: a hash router over six views (overview, TopN, drill-down,
// interfaces, capacity report, alerts), the token box, the firing banner (polled
// here, not per view, so it outlives route changes), and the context each view
// gets (abort signal, timers and charts to dispose, the ready mark tests and timings read).
import * as api from './api.js';
import { clearBanner } from './ui.js';
import { route } from './state.js';
import { overview } from './views/overview.js';
import { topView } from './views/top.js';
import { drillView } from './views/drill.js';
import { interfacesView } from './views/interfaces.js';
import { reportView } from './views/report.js';
import { alertsView } from './views/alerts.js';
import { startAlertBanner } from './alertbanner.js';

const VIEWS = {
  '/': { render: overview, nav: '/' },
  '/top': { render: topView, nav: '/top' },
  '/key': { render: drillView, nav: '/top' },
  '/interfaces': { render: interfacesView, nav: '/interfaces' },
  '/report': { render: reportView, nav: '/report' },
  '/alerts': { render: alertsView, nav: '/alerts' },
};

let current = null;

// newContext: what a view may hold, released when the route changes.
function newContext(root, name) {
  const abort = new AbortController();
  const owned = [];
  const timers = [];
  let firstReady = true;
  return {
    signal: abort.signal,
    own(x) { owned.push(x); return x; },
    every(ms, fn) { timers.push(setInterval(fn, ms)); },
    // refreshing runs load(first) now and, on a live range, every ms: a slow
    // answer never piles up refreshes, and the first load marks the view ready.
    refreshing(live, ms, load) {
      let running = false;
      const run = async (first) => {
        if (running) return;
        running = true;
        try {
          await load(first);
        } finally {
          running = false;
          if (first) this.ready();
        }
      };
      run(true);
      if (live) this.every(ms, () => run(false));
    },
    // ready marks the first complete render: tests wait for it, and the
    // time from navigation start to it is the view's load time.
    ready() {
      if (abort.signal.aborted || !firstReady) return;
      firstReady = false;
      root.dataset.state = 'ready';
      performance.mark('tmsd:' + name + ':ready');
    },
    dispose() {
      abort.abort();
      timers.forEach(clearInterval);
      owned.forEach((x) => x.destroy());
    },
  };
}

function render() {
  const { path, params } = route();
  const view = VIEWS[path] || VIEWS['/'];
  const root = document.getElementById('view');
  if (current) current.dispose();
  clearBanner();
  root.dataset.view = path === '/' || !VIEWS[path] ? 'overview' : path.slice(1);
  root.dataset.state = 'loading';
  root.dataset.route = location.hash;
  for (const a of document.querySelectorAll('nav a[data-nav]')) a.classList.toggle('active', a.dataset.nav === view.nav);
  current = newContext(root, root.dataset.view);
  view.render(root, params, current);
}

function tokenBox(onToken) {
  const dlg = document.getElementById('token-dialog');
  const input = dlg.querySelector('input');
  const btn = document.getElementById('token-button');
  const mark = () => {
    btn.textContent = api.getToken() ? 'Token ✓' : 'Token';
  };
  const open = () => {
    input.value = api.getToken();
    if (!dlg.open) dlg.showModal();
    input.focus();
  };
  btn.addEventListener('click', open);
  document.addEventListener('tmsd:need-token', () => { if (!api.getToken()) open(); });
  dlg.querySelector('form').addEventListener('submit', (e) => {
    e.preventDefault();
    api.setToken(e.submitter && e.submitter.value === 'clear' ? '' : input.value);
    dlg.close();
    mark();
    render();
    onToken();
  });
  dlg.querySelector('button[value=cancel]').addEventListener('click', (e) => {
    e.preventDefault();
    dlg.close();
  });
  mark();
}

// The API menu closes on a click elsewhere, as menus do.
document.addEventListener('click', (e) => {
  for (const m of document.querySelectorAll('details.api-menu[open]')) if (!m.contains(e.target)) m.open = false;
});
document.getElementById('banner').querySelector('button').addEventListener('click', clearBanner);
const pollAlerts = startAlertBanner();
tokenBox(pollAlerts);
window.addEventListener('hashchange', render);
render();
