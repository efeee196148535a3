// Capacity report: per key, the average, peak (with its time) and 95th
// percentile rate over a range cut in steps, from /report, and the same
// report as CSV. The range is widened here to whole steps (outward, so that
// "now" takes in the open step), as /report wants (older ones refuse other
// edges, newer ones widen them the same way); both the table and the CSV link
// use those absolute edges, so what is downloaded is what is shown, and the
// date fields show the range the answer says it reported.
import * as api from '../api.js';
import * as fmt from '../format.js';
import { h, showError, panelError, rangePicker, eitherSideNote } from '../ui.js';
import { go, resolveTime, rfc3339 } from '../state.js';
import { DIMS, METRICS } from './top.js';
import { dataNote, noteBox } from '../nodata.js';

const NS = ['10', '20', '50', '100'];
const STEPS = { '5m': 300, '1h': 3600 };
const PRESETS = ['24h', '7d', '30d'];
export const REPORT_COMPARES = { '': 'no comparison', prev: 'previous period', '1d': 'a day before', '7d': 'a week before', '28d': '4 weeks before' };

// stateOf reads the report's parameters with their defaults.
function stateOf(params) {
  return {
    by: params.get('by') || 'app', n: params.get('n') || '20', metric: params.get('metric') || 'bytes', step: params.get('step') || '5m',
    from: params.get('from') || '-24h', to: params.get('to') || 'now', compare: params.get('compare') || '',
  };
}

// alignedRange widens from/to outward to whole steps (the step holding
// "now" included: the open step, partial), and to at least one step.
export function alignedRange(from, to, stepSecs, now = new Date()) {
  const ms = stepSecs * 1000;
  const a = resolveTime(from, now);
  const b = resolveTime(to, now);
  if (!a || !b) return null;
  const start = Math.floor(a.getTime() / ms) * ms;
  const end = Math.max(Math.ceil(b.getTime() / ms) * ms, start + ms);
  return { from: rfc3339(new Date(start)), to: rfc3339(new Date(end)) };
}

// openStep is the start (ms) of the answer's last step while it is still
// open, its figures partial: the API's open_step, or, from a tmsd that does
// not say, the last step when the range ends after now; null otherwise.
export function openStep(r, stepSecs, now = Date.now()) {
  if (r.open_step) return Date.parse(r.open_step);
  const end = Date.parse(r.to);
  return end > now ? end - stepSecs * 1000 : null;
}

function select(name, value, options, onChange) {
  const opts = Array.isArray(options) ? Object.fromEntries(options.map((o) => [o, o])) : { ...options };
  if (!(value in opts)) opts[value] = value;
  return h('select', { name, onchange: (e) => onChange(e.target.value) },
    Object.entries(opts).map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

// bound shows a rate and, when it is a bound, how far off it may be.
function rateCell(v, err, cls = 'num') {
  return h('td', { class: cls + (err > 0 ? ' err' : ''), title: err > 0 ? '± ' + fmt.bps(err) + ' (sampled or cut by the TopN)' : null }, fmt.bps(v));
}

// peakCell is a peak's time, marked when it is the open step's (a partial step).
function peakCell(t, open) {
  if (!t) return h('td', {}, '—');
  const cell = fmt.timeText(h('td', { class: 'time' }), new Date(t));
  if (open !== null && Date.parse(t) === open) {
    cell.classList.add('partial');
    cell.append(' (open)');
    cell.title += ': the open step, partial so far';
  }
  return cell;
}

function pctCell(v) {
  if (v === null || v === undefined) return h('td', { class: 'num delta', title: 'nothing in the earlier period' }, 'new');
  return h('td', { class: 'num delta ' + (v >= 0 ? 'up' : 'down') }, (v >= 0 ? '+' : '') + v.toFixed(Math.abs(v) >= 10 ? 0 : 1) + '\u202f%');
}

function reportTable(r, open) {
  const cmp = !!r.compare;
  const m = r.metric || 'bytes';
  const cols = ['#', DIMS[r.by] || r.by, 'average', 'peak', 'peak at', 'p95', m === 'bytes' ? 'total' : 'total ' + m, 'share'];
  if (cmp) cols.push('Δ avg', 'Δ peak', 'Δ p95');
  const head = h('tr', {}, cols.map((c, i) => h('th', { class: i > 1 && i !== 4 ? 'num' : '' }, c)));
  const mk = (row, rank, attrs) => {
    const cells = [
      h('td', { class: 'rank' }, rank),
      h('td', { class: 'key', title: row.key }, row.label || row.key),
      h('td', { class: 'num' }, fmt.bps(row.bps)),
      rateCell(row.peak_bps, row.peak_bps_error),
      peakCell(row.peak_time, open),
      rateCell(row.p95_bps, row.p95_bps_error),
      h('td', { class: 'num', title: fmt.bytes(row.bytes) + ', ' + fmt.count(row.packets) + ' packets, ' + fmt.count(row.flows) + ' flows' },
        m === 'bytes' ? fmt.bytes(row.bytes) : fmt.count(row[m])),
      h('td', { class: 'num share' }, h('span', { class: 'bar', style: `width:${Math.min(100, row.share * 100).toFixed(1)}%` }), h('span', {}, fmt.percent(row.share))),
    ];
    if (cmp) {
      const d = row.delta || {};
      cells.push(pctCell(d.avg_bps), pctCell(d.peak_bps), pctCell(d.p95_bps));
    }
    return h('tr', attrs, cells);
  };
  const body = r.rows.map((row, i) => mk(row, i + 1, { dataset: { key: row.key } }));
  if (!r.rows.length) body.push(h('tr', {}, h('td', { colspan: cols.length, class: 'nodata' }, 'No traffic in this range')));
  const foot = [];
  if (r.other && r.other.bytes > 0) foot.push(mk({ ...r.other, label: 'everything else' }, '', { class: 'other' }));
  foot.push(mk({ ...r.total, label: 'total' }, '', { class: 'total' }));
  return h('table', { class: 'top report', dataset: { by: r.by, metric: m, from: r.from, to: r.to, step: r.step } }, eitherSideNote(r),
    h('thead', {}, head), h('tbody', {}, body), h('tfoot', {}, foot));
}

export function reportView(root, params, ctx) {
  const s = stateOf(params);
  const set = (c) => go('/report', { ...s, ...c });
  const stepSecs = STEPS[s.step] || 300;
  const rng = alignedRange(s.from, s.to, stepSecs);
  // metric= ranks the keys (and gives their share and total); the rates stay
  // bps, as the API computes them and as capacity is planned.
  const q = rng && { by: s.by, n: s.n, metric: s.metric, step: s.step, from: rng.from, to: rng.to, compare: s.compare };
  // The link must not carry the empty parameters the fetch leaves out.
  const csvQuery = q && Object.fromEntries(Object.entries({ ...q, format: 'csv' }).filter(([, v]) => v));
  const download = h('a', { class: 'download', href: q ? '/api/v1/report?' + new URLSearchParams(csvQuery) : null, download: 'tmsd-report.csv' }, 'Download CSV');
  // fetchCSV is what the link saves; the tests read it to compare with the API.
  download.fetchCSV = () => api.text('report', { ...q, format: 'csv' }, 'text/csv');
  download.addEventListener('click', async (e) => {
    // A plain link cannot carry the Authorization header: fetch, then save a Blob.
    if (!api.getToken()) return;
    e.preventDefault();
    try {
      const url = URL.createObjectURL(new Blob([await download.fetchCSV()], { type: 'text/csv' }));
      const a = h('a', { href: url, download: 'tmsd-report.csv' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      showError(err);
    }
  });
  const controls = h('div', { class: 'controls' },
    h('label', {}, 'top ', select('n', s.n, NS, (v) => set({ n: v }))),
    h('label', {}, select('by', s.by, DIMS, (v) => set({ by: v }))),
    h('label', {}, 'by ', select('metric', s.metric, METRICS, (v) => set({ metric: v }))),
    h('label', {}, 'step ', select('step', s.step, Object.keys(STEPS), (v) => set({ step: v }))),
    h('label', {}, 'compare with ', select('compare', s.compare, REPORT_COMPARES, (v) => set({ compare: v }))),
    download,
  );
  const tableEl = h('div', { class: 'panel-body' }, h('p', { class: 'loading' }, 'loading…'));
  const note = h('p', { class: 'muted note' });
  const where = noteBox();
  const picker = rangePicker(s.from, s.to, set, PRESETS);
  if (rng) picker.shown(new Date(rng.from), new Date(rng.to)); // what is asked, until the answer says
  root.replaceChildren(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Capacity report by ' + (DIMS[s.by] || s.by)), picker),
    controls,
    h('section', { class: 'card' }, where, tableEl, note),
  );

  (async () => {
    try {
      if (!rng) throw new Error('cannot read the range from=' + s.from + ' to=' + s.to);
      const r = await api.get('report', q, ctx.signal);
      const step = STEPS[r.step] || stepSecs;
      const open = openStep(r, step);
      tableEl.replaceChildren(reportTable(r, open));
      const from = new Date(r.from);
      const to = new Date(r.to);
      picker.shown(from, to); // the range reported, as the answer says
      let text = `From ${fmt.localTime(from)} to ${fmt.localTime(to)} in steps of ${r.step}, ranked by ${r.metric}: average over the range, peak and 95th percentile of the per-step rates in bits per second (${r.percentile}).`;
      if (open !== null) text += ` The last step, from ${fmt.localTime(new Date(open))}, is still open: its figures are partial so far.`;
      if (r.compare) text += ` Δ: against ${fmt.localTime(new Date(r.compare.from))} – ${fmt.localTime(new Date(r.compare.to))}.`;
      if (!r.exact) text += ' Orange figures are bounds (hover for how far off).';
      if (r.partial) text += ' Some minutes did not keep this breakdown: the figures miss them.';
      note.textContent = text;
      note.title = fmt.utcTime(from) + ' – ' + fmt.utcTime(to);
      root.dataset.exact = String(r.exact);
      note.dataset.openStep = open === null ? '' : rfc3339(new Date(open));
      await dataNote(where, { empty: !r.total.bytes, from: r.from, to: r.to, alignMs: step * 1000, onJump: (x) => set(x), signal: ctx.signal });
    } catch (e) {
      showError(e);
      panelError(tableEl, e);
    } finally {
      ctx.ready();
    }
  })();
}
