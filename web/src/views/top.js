// TopN view: the top N keys of a dimension as a stacked area over time plus
// `other`, and their table. The chart is built from one /series call per key
// (the API has no multi-key series). Compare fetches the same range shifted
// back and overlays its total dashed; the table gets a change column.
import * as api from '../api.js';
import * as fmt from '../format.js';
import { TimeChart, PALETTE, OTHER_COLOR } from '../charts.js';
import { h, showError, panelError, rangePicker, topTable } from '../ui.js';
import { go, isLive, chooseStep, rfc3339, compareOffset } from '../state.js';

export const DIMS = {
  app: 'application', srcip: 'source IP', dstip: 'destination IP', ip: 'IP (either side)',
  srcport: 'source port', dstport: 'destination port', port: 'port (either side)', proto: 'protocol',
  exporter: 'exporter', in_if: 'input interface', out_if: 'output interface',
};
export const METRICS = ['bytes', 'packets', 'flows'];
export const COMPARES = { '': 'no comparison', prev: 'previous period', '1d': 'a day before', '7d': 'a week before' };
const NS = ['5', '10', '20', '50'];
const PROTOS = ['', 'tcp', 'udp', 'icmp', 'ipv6-icmp', 'gre', 'esp', 'sctp'];

// stateOf reads a TopN/drill-down view's parameters with their defaults.
export function stateOf(params) {
  return {
    by: params.get('by') || 'app', n: params.get('n') || '10', metric: params.get('metric') || 'bytes',
    from: params.get('from') || '-1h', to: params.get('to') || 'now',
    exporter: params.get('exporter') || '', proto: params.get('proto') || '', compare: params.get('compare') || '',
  };
}

// perSecond is a series point's value in the metric's rate.
export const perSecond = (metric, stepSecs) => (p) =>
  metric === 'packets' ? p.pps : metric === 'flows' ? p.flows / stepSecs : p.bps;

// shifted lays a previous period's points on the current x axis.
export function shifted(prevPoints, offsetMs, xs, value) {
  const out = new Array(xs.length).fill(null);
  if (!xs.length) return out;
  const step = xs.length > 1 ? xs[1] - xs[0] : 60;
  for (const p of prevPoints) {
    const i = Math.round(((Date.parse(p.t) + offsetMs) / 1000 - xs[0]) / step);
    if (Number.isInteger(i) && i >= 0 && i < xs.length) out[i] = value(p);
  }
  return out;
}

function select(name, value, options, onChange) {
  const opts = Array.isArray(options) ? Object.fromEntries(options.map((o) => [o, o || 'any'])) : { ...options };
  if (!(value in opts)) opts[value] = value; // a bookmarked value the list lacks
  return h('select', { name, onchange: (e) => onChange(e.target.value) },
    Object.entries(opts).map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

export function topView(root, params, ctx) {
  const s = stateOf(params);
  const set = (c) => go('/top', { ...s, ...c });
  const exporterSel = select('exporter', s.exporter, [''], (v) => set({ exporter: v, proto: v ? '' : s.proto }));
  const controls = h('div', { class: 'controls' },
    h('label', {}, 'top ', select('n', s.n, NS, (v) => set({ n: v }))),
    h('label', {}, select('by', s.by, DIMS, (v) => set({ by: v }))),
    h('label', {}, 'by ', select('metric', s.metric, METRICS, (v) => set({ metric: v }))),
    h('label', {}, 'exporter ', exporterSel),
    h('label', {}, 'protocol ', select('proto', s.proto, PROTOS, (v) => set({ proto: v, exporter: v ? '' : s.exporter }))),
    h('label', {}, 'compare with ', select('compare', s.compare, COMPARES, (v) => set({ compare: v }))),
  );
  const chartEl = h('div');
  const tableEl = h('div', { class: 'panel-body' }, h('p', { class: 'loading' }, 'loading…'));
  const note = h('p', { class: 'muted note' });
  const rateFmt = (v) => fmt.rate(s.metric, v);
  const chart = ctx.own(new TimeChart(chartEl, { height: 320, fmt: rateFmt, stacked: true,
    onZoom: (a, b) => set({ from: rfc3339(a), to: rfc3339(b) }) }));
  root.replaceChildren(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Top ' + s.n + ' by ' + (DIMS[s.by] || s.by)), rangePicker(s.from, s.to, set)),
    controls,
    h('section', { class: 'card' }, chartEl, note),
    h('section', { class: 'card' }, tableEl),
  );

  // The exporter list fills the scope menu; its failure is the banner's business.
  api.exporters(ctx.signal).then((r) => {
    for (const e of r.exporters) {
      if (e.address !== s.exporter) exporterSel.append(h('option', { value: e.address }, e.address));
    }
  }).catch(showError);

  async function load() {
    const scope = { exporter: s.exporter, proto: s.proto };
    const top = await api.top({ by: s.by, n: s.n, metric: s.metric, from: s.from, to: s.to, ...scope }, ctx.signal);
    // Everything else uses the answer's resolved range: "now" must not move between calls.
    const from = Date.parse(top.from);
    const to = Date.parse(top.to);
    const step = chooseStep(to - from);
    const abs = { from: top.from, to: top.to, step: step + 's', ...scope };
    const calls = [() => api.series(abs, ctx.signal),
      ...top.rows.map((r) => () => api.series({ ...abs, by: s.by, key: r.key }, ctx.signal))];
    const off = compareOffset(s.compare, from, to);
    if (off) {
      const prev = { ...abs, from: rfc3339(new Date(from - off)), to: rfc3339(new Date(to - off)) };
      calls.push(() => api.series(prev, ctx.signal),
        () => api.top({ by: s.by, n: 1000, metric: s.metric, from: prev.from, to: prev.to, ...scope }, ctx.signal));
    }
    const res = await api.inParallel(calls);
    const total = res[0];
    const keys = res.slice(1, 1 + top.rows.length);
    const v = perSecond(s.metric, step);
    const xs = total.points.map((p) => Date.parse(p.t) / 1000);
    const colors = top.rows.map((_, i) => PALETTE[i % PALETTE.length]);
    const layers = keys.map((k, i) => ({ label: top.rows[i].label || top.rows[i].key, color: colors[i], values: k.points.map(v) }));
    const other = total.points.map((p, i) => Math.max(0, v(p) - layers.reduce((a, l) => a + (l.values[i] || 0), 0)));
    layers.push({ label: 'everything else', color: OTHER_COLOR, values: other });
    let prevRows;
    if (off) {
      const [prevTotal, prevTop] = res.slice(1 + top.rows.length);
      const label = 'total, ' + (COMPARES[s.compare] || s.compare + ' before');
      layers.push({ label, color: '#e8e8e8', dash: true, values: shifted(prevTotal.points, off, xs, v) });
      prevRows = new Map(prevTop.rows.map((r) => [r.key, r]));
      // "Everything else" then is what today's top keys leave of that total.
      const rest = {};
      for (const m of METRICS) {
        rest[m] = Math.max(0, prevTop.total[m] - top.rows.reduce((a, r) => a + ((prevRows.get(r.key) || {})[m] || 0), 0));
      }
      prevRows.set('\0other', rest);
      note.textContent = `Dashed: the total from ${fmt.localTime(new Date(from - off))} to ${fmt.localTime(new Date(to - off))}, laid over this range. Δ compares each row with the same key then.`;
    } else {
      note.textContent = `One point per ${step >= 3600 ? step / 3600 + ' h' : step / 60 + ' min'}; drag across the chart to zoom, click a row to drill down.`;
    }
    chart.setData(xs, layers);
    tableEl.replaceChildren(topTable(top, { metric: s.metric, colors, prev: prevRows,
      onRow: (r) => go('/key', { by: s.by, key: r.key, label: r.label !== r.key ? r.label : '', metric: s.metric, from: s.from, to: s.to, exporter: s.exporter, proto: s.proto, compare: s.compare }) }));
    root.dataset.exact = String(top.exact);
  }

  let running = false;
  async function refresh(first) {
    if (running) return;
    running = true;
    try {
      await load();
    } catch (e) {
      showError(e);
      panelError(tableEl, e);
      if (!chart.u) panelError(chartEl, e);
    } finally {
      running = false;
      if (first) ctx.ready();
    }
  }
  refresh(true);
  if (isLive(s.to)) ctx.every(60_000, () => refresh(false));
}
