// Small DOM helpers shared by the views: element builder, the error banner,
// the time range picker and the TopN table.
import * as fmt from './format.js';
import { ApiError } from './api.js';
import { resolveTime, rfc3339 } from './state.js';

// h builds an element: h('td', {class: 'num', title: 'x'}, 'text', child).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// explain turns an error into a sentence a person can act on.
export function explain(err) {
  if (!(err instanceof ApiError)) return 'Unexpected error: ' + (err && err.message ? err.message : String(err));
  switch (err.status) {
    case 0:
      return 'Cannot reach tmsd: ' + err.message;
    case 401:
      return 'tmsd asks for a token (401): paste a read token with the Token button. ' + err.message;
    case 403:
      // A read token refused a write: the admin routes (silences, rules).
      if (err.method && err.method !== 'GET') return 'This needs an admin token (403): paste one from tmsd token with the Token button. ' + err.message;
      return 'This token may not read that (403): ' + err.message;
    case 400:
      return 'tmsd refused ' + (err.parameter ? 'the parameter “' + err.parameter + '”' : 'the request') + ': ' + err.message;
    default:
      return `tmsd answered ${err.status} to ${err.path}: ${err.message}`;
  }
}

const banner = () => document.getElementById('banner');

// showError puts the error in the banner, once per distinct message.
export function showError(err) {
  if (err && err.name === 'AbortError') return;
  const b = banner();
  const text = explain(err);
  b.hidden = false;
  b.dataset.status = err instanceof ApiError ? String(err.status) : '';
  const msgs = b.querySelector('.msgs');
  if ([...msgs.children].some((li) => li.textContent === text)) return;
  msgs.append(h('li', {}, text));
  if (err instanceof ApiError && err.status === 401) document.dispatchEvent(new CustomEvent('tmsd:need-token'));
}

export function clearBanner() {
  const b = banner();
  b.hidden = true;
  b.querySelector('.msgs').replaceChildren();
}

// panelError replaces a panel's body with the error, so it is never blank.
export function panelError(el, err) {
  if (err && err.name === 'AbortError') return;
  el.replaceChildren(h('p', { class: 'panel-error' }, explain(err)));
}

const PRESETS = ['15m', '1h', '6h', '24h', '7d', '30d'];

// localInput is a Date as a datetime-local input value (browser's zone).
function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// rangePicker shows the presets and a custom from/to; onChange gets {from, to}.
export function rangePicker(from, to, onChange, presetList = PRESETS) {
  const now = new Date();
  const f = resolveTime(from, now) || new Date(now - 3600e3);
  const t = resolveTime(to, now) || now;
  const fromIn = h('input', { type: 'datetime-local', name: 'from', value: localInput(f), title: fmt.utcTime(f) });
  const toIn = h('input', { type: 'datetime-local', name: 'to', value: localInput(t), title: fmt.utcTime(t) });
  const form = h('form', { class: 'custom', onsubmit: (e) => {
    e.preventDefault();
    const a = new Date(fromIn.value);
    const b = new Date(toIn.value);
    if (Number.isNaN(a.getTime()) || Number.isNaN(b.getTime())) return;
    onChange({ from: rfc3339(a), to: rfc3339(b) });
  } }, fromIn, '→', toIn, h('button', { type: 'submit' }, 'Apply'));
  const presets = presetList.map((p) => h('button', {
    type: 'button',
    class: from === '-' + p && (!to || to === 'now') ? 'preset active' : 'preset',
    onclick: () => onChange({ from: '-' + p, to: 'now' }),
  }, p));
  const el = h('div', { class: 'range' }, h('span', { class: 'presets' }, presets), form);
  // shown sets the fields to the range an answer covered (the report widens
  // a range to whole steps), which Apply then asks as it is.
  el.shown = (a, b) => {
    fromIn.value = localInput(a);
    toIn.value = localInput(b);
    fromIn.title = fmt.utcTime(a);
    toIn.title = fmt.utcTime(b);
  };
  return el;
}

// EITHER_SIDE are the dimensions where a flow counts under both of its ends.
const EITHER_SIDE = ['ip', 'port', 'country', 'as'];

// countsPerFlow is how many keys of an answer's dimension each flow counts
// under: the API's counts_per_flow, else 2 for ip, port, country and as (either side).
export const countsPerFlow = (resp) => resp.counts_per_flow ?? (EITHER_SIDE.includes(resp.by) ? 2 : 1);

// eitherSideNote says, next to the shares of an either-side dimension, why
// they add up to 200 %.
export function eitherSideNote(resp) {
  const n = countsPerFlow(resp);
  if (n < 2 || !resp.rows.length) return null;
  return h('caption', { class: 'either-side', title: 'a flow from 10.0.0.1:40000 to 10.0.0.2:443 counts under both addresses and both ports' },
    `each flow counts at both ends: shares add up to ${n * 100} %`);
}

// RANGES explain the keys of the country and AS dimensions that are address
// ranges rather than places or networks (the API's special words).
export const RANGES = {
  private: 'private addresses (10/8, 172.16/12, 192.168/16, fc00::/7)', cgnat: 'shared address space of carrier-grade NAT (100.64.0.0/10)',
  documentation: 'documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32): examples, not real hosts', loopback: 'loopback addresses',
  'link-local': 'link-local addresses', multicast: 'multicast addresses', reserved: 'reserved or special-purpose address space (0/8, 240/4, 198.18/15, …)',
  unknown: 'not in the GeoIP database', 0: 'no AS known (not in the GeoIP database, and the exporter sent none)',
};
const GEO_DIMS = ['srccountry', 'dstcountry', 'country', 'srcas', 'dstas', 'as'];

// keyTitle is a row's hover text: its key; for a country or AS its name in
// full too ("AS4766 Korea Telecom", cut in a narrow panel), and for a range
// word what it means.
export function keyTitle(by, key, label) {
  if (!GEO_DIMS.includes(by) || key === 'other') return key; // 'other': the everything-else row
  if (Object.hasOwn(RANGES, key)) return key + ': ' + RANGES[key];
  return label && label !== key ? label + ' (' + key + ')' : key;
}

// metricRate is a row's rate in the metric's unit per second.
export function metricRate(row, metric, seconds) {
  switch (metric) {
    case 'packets': return row.pps;
    case 'flows': return row.flows / seconds;
    default: return row.bps;
  }
}

export const rangeSeconds = (resp) => (new Date(resp.to) - new Date(resp.from)) / 1000;

// deltaCell shows the API's change of a row (delta.total, in %; null when
// the key had nothing then), with its raw value in data-delta.
function deltaCell(r, metric) {
  const v = r.delta ? r.delta.total : null;
  const title = 'before: ' + fmt.amount(metric, r.previous ? r.previous[metric] : 0);
  if (v === null || v === undefined) {
    return h('td', { class: 'num delta up', title, dataset: { delta: 'null' } }, r[metric] ? 'new' : '—');
  }
  return h('td', { class: 'num delta ' + (v >= 0 ? 'up' : 'down'), title, dataset: { delta: String(v) } },
    (v >= 0 ? '+' : '') + v.toFixed(Math.abs(v) >= 10 ? 0 : 1) + '\u202f%');
}

// topTable renders a /top answer: rank, label, bps, pps (flows/s when ranked
// by flows), bytes and flows over the range, share (as a bar; a compact panel
// shows only the metric's rate and the share), the error bound only when some
// row has one, and, when the answer has a comparison (compare=), each row's
// change as the API computed it. Shares of an either-side dimension say why
// they add up to 200 %.
export function topTable(resp, { metric = 'bytes', colors, onRow, compact } = {}) {
  const prev = !!resp.compare;
  const secs = rangeSeconds(resp);
  const hasErr = resp.rows.some((r) => r.error > 0);
  // Rate columns: the metric's own when compact, else bps and pps (and flows/s when ranked by flows),
  // then the volumes over the range: bytes and flows.
  const rates = compact ? [metric] : metric === 'flows' ? ['bytes', 'packets', 'flows'] : ['bytes', 'packets'];
  const rateName = { bytes: 'bps', packets: 'pps', flows: 'flows/s' };
  const volumes = compact ? [] : ['bytes', 'flows'];
  const cols = ['#', resp.by, ...rates.map((m) => rateName[m]), ...volumes, 'share'];
  if (hasErr) cols.push('error ±');
  if (prev) cols.push('Δ');
  const head = h('tr', {}, cols.map((c, i) => h('th', { class: i > 1 ? 'num' : '' }, c)));
  const mk = (r, i, extra = {}) => {
    const cells = [
      h('td', { class: 'rank' }, colors && colors[i] ? h('span', { class: 'swatch', style: `background:${colors[i]}` }) : '', extra.rank ?? i + 1),
      h('td', { class: 'key', title: keyTitle(resp.by, r.key, r.label) }, r.label || r.key),
      ...rates.map((m) => h('td', { class: 'num' }, fmt.rate(m, metricRate(r, m, secs)))),
      ...volumes.map((m) => h('td', { class: 'num volume', title: m === 'bytes' ? fmt.count(r.packets) + ' packets' : null },
        m === 'bytes' ? fmt.bytes(r.bytes) : fmt.count(r.flows))),
      h('td', { class: 'num share' }, h('span', { class: 'bar', style: `width:${Math.min(100, r.share * 100).toFixed(1)}%` }), h('span', {}, fmt.percent(r.share))),
    ];
    if (hasErr) cells.push(h('td', { class: 'num err', title: 'the most this row may be under-counted by' }, r.error > 0 ? fmt.amount(metric, r.error) : ''));
    if (prev) cells.push(deltaCell(r, metric));
    return h('tr', extra.attrs || {}, cells);
  };
  const body = resp.rows.map((r, i) => mk(r, i, { attrs: onRow ? { class: 'clickable', dataset: { key: r.key }, tabindex: '0', onclick: () => onRow(r), onkeydown: (e) => e.key === 'Enter' && onRow(r) } : { dataset: { key: r.key } } }));
  const foot = [];
  if (resp.other && resp.other[metric] > 0) {
    foot.push(mk({ key: 'other', label: 'everything else', ...resp.other, error: 0 }, resp.rows.length, { rank: '', attrs: { class: 'other' } }));
  }
  if (!resp.rows.length) {
    body.push(h('tr', {}, h('td', { colspan: cols.length, class: 'nodata' }, 'No traffic in this range')));
  }
  return h('table', { class: 'top', dataset: { by: resp.by, from: resp.from, to: resp.to, metric } }, eitherSideNote(resp),
    h('thead', {}, head), h('tbody', {}, body), foot.length ? h('tfoot', {}, foot) : null);
}
