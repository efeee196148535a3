// The firing banner, on every view: GET /alerts/active at load, every 30 s
// and when the Alerts page changes something, kept apart from the views'
// error banner (clearBanner) so a route change leaves it. A failure hides it
// quietly: an older tmsd has no such route, and a missing token is the views' to ask.
import * as api from './api.js';
import { keyText, valueText } from './views/alerts.js';

const POLL_MS = 30_000;
const NAMED = 3; // alerts named in full, then "and N more"

// bannerText says what fires: the unsilenced alerts named first.
export function bannerText(n, firing) {
  const named = [...firing].sort((a, b) => (a.silenced ? 1 : 0) - (b.silenced ? 1 : 0)).slice(0, NAMED)
    .map((a) => `${a.rule} ${keyText(a)} ${valueText(a)}` + (a.silenced ? ' (silenced)' : ''));
  const more = n - named.length;
  return `${n} alert${n === 1 ? '' : 's'} firing: ` + named.join(', ') + (more > 0 ? ` and ${more} more` : '');
}

// startAlertBanner polls and returns the poll, to run again at will (a new token).
export function startAlertBanner() {
  const el = document.getElementById('alert-banner');
  const hide = () => {
    el.hidden = true;
    el.dataset.firing = '0';
    el.textContent = '';
  };
  let running = false;
  let again = false;
  const poll = async () => {
    if (running) {
      again = true; // a change during a poll is asked once more after it
      return;
    }
    running = true;
    try {
      const ans = await api.get('alerts/active');
      const firing = (ans.alerts || []).filter((a) => a.state === 'firing');
      const n = ans.firing ?? firing.length;
      if (!n) {
        hide();
        el.dataset.poll = 'ok';
        return;
      }
      el.dataset.firing = String(n);
      el.classList.toggle('critical', firing.some((a) => a.severity === 'critical' && !a.silenced));
      el.textContent = bannerText(n, firing);
      el.title = firing.map((a) => a.summary).filter(Boolean).join('\n');
      el.hidden = false;
      el.dataset.poll = 'ok';
    } catch {
      hide();
      el.dataset.poll = 'failed'; // tests read whether a poll answered
    } finally {
      running = false;
      if (again) {
        again = false;
        poll();
      }
    }
  };
  poll();
  setInterval(poll, POLL_MS);
  document.addEventListener('tmsd:alerts-changed', poll);
  return poll;
}
