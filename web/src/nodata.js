// Where the data is, when a view's range has none: a store imported from last
// week's capture, or exporters gone quiet, must not leave a page that only
// says "No traffic". GET /data tells when the traffic is; the note says so
// and jumps there in one click.
import * as api from './api.js';
import * as fmt from './format.js';
import { h, showError } from './ui.js';
import { rfc3339 } from './state.js';

// jumpRange is where to go from an empty range [a, b) (ms): the stretch of
// the data nearest to it, as long as the range (or all of it when shorter),
// widened to whole steps of alignMs when the view needs them (the report).
export function jumpRange(data, a, b, alignMs = 0) {
  const df = Date.parse(data.from);
  const dt = Date.parse(data.to);
  const len = Math.max(b - a, 60e3);
  let from;
  let to;
  if (b <= df) { // the range is before the data: its start
    from = df;
    to = Math.min(dt, df + len);
  } else { // after the data, or in a gap of it: its latest stretch
    to = dt;
    from = Math.max(df, dt - len);
  }
  if (alignMs) {
    from = Math.floor(from / alignMs) * alignMs;
    to = Math.max(Math.ceil(to / alignMs) * alignMs, from + alignMs);
  }
  return { from: rfc3339(new Date(from)), to: rfc3339(new Date(to)) };
}

// dataNote fills el (emptied otherwise) when the view's range [from, to)
// (RFC 3339, the answer's) held no traffic: when tmsd has traffic, and a
// button that calls onJump({from, to}) with a range holding it. A scoped
// view (an exporter, a key) whose range lies within the data says nothing
// more: the traffic there is the other exporters' or keys'. An older tmsd
// without /data gets the plain "no traffic" of the view.
export async function dataNote(el, { empty, from, to, scoped = false, alignMs = 0, onJump, signal }) {
  el.replaceChildren();
  el.hidden = true;
  delete el.dataset.state;
  if (!empty) return;
  let d;
  try {
    d = await api.get('data', {}, signal);
  } catch (e) {
    if (!(e instanceof api.ApiError && e.status === 404)) showError(e);
    return;
  }
  const a = Date.parse(from);
  const b = Date.parse(to);
  if (!d.from) {
    el.dataset.state = 'none';
    el.append('No traffic in this range, and tmsd has none stored yet: point an exporter at it, or import a capture (',
      h('code', {}, 'tmsd import'), ').');
    el.hidden = false;
    return;
  }
  const df = new Date(d.from);
  const dt = new Date(d.to);
  if (scoped && df < b && dt > a) return;
  const r = jumpRange(d, a, b, alignMs);
  const jf = new Date(r.from);
  const jt = new Date(r.to);
  el.dataset.state = 'elsewhere';
  el.dataset.from = d.from;
  el.dataset.to = d.to;
  const whole = r.from === d.from && r.to === d.to;
  el.append(
    h('span', {}, 'No traffic in this range. tmsd has traffic from ',
      h('time', { datetime: d.from, title: fmt.utcTime(df) }, fmt.localTime(df)), ' to ',
      h('time', { datetime: d.to, title: fmt.utcTime(dt) }, fmt.localTime(dt)),
      dt > Date.now() ? ' (now)' : ' (its end ' + fmt.ago(dt) + ')', scoped ? ', all exporters and keys together. ' : '. '),
    h('button', { type: 'button', class: 'jump', dataset: { from: r.from, to: r.to }, title: fmt.utcTime(jf) + ' – ' + fmt.utcTime(jt),
      onclick: () => onJump(r) }, (whole ? 'Show it: ' : 'Show ') + fmt.localRange(jf, jt)),
  );
  el.hidden = false;
}

// noteBox is the element a view gives dataNote.
export const noteBox = () => h('div', { class: 'where-data', hidden: true, role: 'status' });
