// TopN view: the top N keys of a dimension as a stacked area over time plus
// `other` (one stacked /series), and their table (/top). Compare is the API's
// compare=: the series brings the earlier total, laid over dashed, and the top
// each row's change against the same key then, so both are the server's figures.
import * as api from '../api.js';
import * as fmt from '../format.js';
import { TimeChart, PALETTE, OTHER_COLOR } from '../charts.js';
import { h, showError, panelError, rangePicker, topTable } from '../ui.js';
import { go, isLive, chooseStep, compareStep, rfc3339, compareOffset } from '../state.js';
import { dataNote, noteBox } from '../nodata.js';

export const DIMS = {
  app: 'application', srcip: 'source IP', dstip: 'destination IP', ip: 'IP (either side)',
  srcport: 'source port', dstport: 'destination port', port: 'port (either side)', proto: 'protocol',
  exporter: 'exporter', in_if: 'input interface', out_if: 'output interface',
  srccountry: 'source country', dstcountry: 'destination country', country: 'country (either side)',
  srcas: 'source AS', dstas: 'destination AS', as: 'AS (either side)', appgroup: 'application group',
};
export const METRICS = ['bytes', 'packets', 'flows'];
// COMPARES are the API's compare= values.
export const COMPARES = { '': 'no comparison', prev: 'previous period', '1d': 'a day before', '7d': 'a week before', '28d': '4 weeks before' };
const NS = ['5', '10', '20', '50'];
// DIRS are the API's dir= values, each interface table's direction.
const DIRS = { in: 'in (entering)', out: 'out (leaving)' };
// IF_LIST_N bounds the interfaces listed per direction: a backbone's exporters
// have hundreds, not thousands, that carry flows in one range.
const IF_LIST_N = 1000;
const PROTOS = ['', 'tcp', 'udp', 'icmp', 'ipv6-icmp', 'gre', 'esp', 'sctp'];

// stateOf reads a TopN/drill-down view's parameters with their defaults.
export function stateOf(params) {
  return {
    by: params.get('by') || 'app', n: params.get('n') || '10', metric: params.get('metric') || 'bytes',
    from: params.get('from') || '-1h', to: params.get('to') || 'now',
    compare: params.get('compare') || '',
    ...Object.fromEntries(SCOPES.map((k) => [k, params.get(k) || ''])),
  };
}

// SCOPES are the API's scope filters (one at a time, dir going with if).
export const SCOPES = ['exporter', 'proto', 'if', 'dir', 'app', 'ip'];

// scopeText says which traffic a scoped view shows.
export function scopeText(s) {
  if (s.exporter) return 'within exporter ' + s.exporter;
  if (s.proto) return 'within protocol ' + s.proto;
  if (s.if) return 'within interface ' + s.if + (s.dir === 'out' ? ', outbound' : ', inbound');
  if (s.app) return 'within application ' + s.app;
  if (s.ip) return 'to and from ' + s.ip;
  return '';
}

// scopeOf is a state's scope filters, to pass on to the API and to links.
export const scopeOf = (s) => Object.fromEntries(SCOPES.map((k) => [k, s[k]]));

// perSecond is a series point's value in the metric's rate.
export const perSecond = (metric, stepSecs) => (p) =>
  metric === 'packets' ? p.pps : metric === 'flows' ? p.flows / stepSecs : p.bps;

// exporterName is how a picker shows an exporter: "seoul-bb1 (192.0.2.1)"
// when it has a name (configuration, SNMP sysName, reverse DNS), else its address.
export const exporterName = (e) => (e.name && e.name !== e.address ? `${e.name} (${e.address})` : e.address);

// fillExporters adds the exporters of /exporters to a picker, each valued by
// its address; the one selected already (a bookmark's) gets its name too.
export function fillExporters(sel, exporters, selected) {
  for (const e of exporters) {
    if (e.address === selected) {
      const o = [...sel.options].find((x) => x.value === selected);
      if (o) o.textContent = exporterName(e);
    } else {
      sel.append(h('option', { value: e.address }, exporterName(e)));
    }
  }
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
  // One scope at a time (the API keeps tables per scope, not per combination).
  const noScope = Object.fromEntries(SCOPES.map((k) => [k, '']));
  const exporterSel = select('exporter', s.exporter, [''], (v) => set({ ...noScope, exporter: v }));
  // Interface and direction go together (the API keeps interface tables per
  // direction): the direction picked before an interface waits for one, and
  // "any" interface clears both.
  let pendingDir = s.dir || 'in';
  const ifSel = select('if', s.if, [''], (v) => set({ ...noScope, if: v, dir: v ? pendingDir : '' }));
  const dirSel = select('dir', pendingDir, DIRS, (v) => {
    pendingDir = v;
    if (s.if) set({ ...noScope, if: s.if, dir: v });
  });
  const ifHint = h('span', { class: 'muted scope-off', hidden: true });
  const controls = h('div', { class: 'controls' },
    h('label', {}, 'top ', select('n', s.n, NS, (v) => set({ n: v }))),
    h('label', {}, select('by', s.by, DIMS, (v) => set({ by: v }))),
    h('label', {}, 'by ', select('metric', s.metric, METRICS, (v) => set({ metric: v }))),
    h('label', {}, 'exporter ', exporterSel),
    h('label', {}, 'protocol ', select('proto', s.proto, PROTOS, (v) => set({ ...noScope, proto: v }))),
    h('label', {}, 'interface ', ifSel),
    h('label', {}, 'direction ', dirSel),
    ifHint,
    h('label', {}, 'compare with ', select('compare', s.compare, COMPARES, (v) => set({ compare: v }))),
    s.app || s.ip ? h('span', { class: 'scope' }, scopeText(s)) : null,
  );
  const chartEl = h('div');
  const tableEl = h('div', { class: 'panel-body' }, h('p', { class: 'loading' }, 'loading…'));
  const note = h('p', { class: 'muted note' });
  const where = noteBox();
  const rateFmt = (v) => fmt.rate(s.metric, v);
  const chart = ctx.own(new TimeChart(chartEl, { height: 320, fmt: rateFmt, stacked: true,
    onZoom: (a, b) => set({ from: rfc3339(a), to: rfc3339(b) }) }));
  root.replaceChildren(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Top ' + s.n + ' by ' + (DIMS[s.by] || s.by)), rangePicker(s.from, s.to, set)),
    controls,
    h('section', { class: 'card' }, where, chartEl, note),
    h('section', { class: 'card' }, tableEl),
  );

  // The exporter list fills the scope menu; its failure is the banner's business.
  api.exporters(ctx.signal).then((r) => fillExporters(exporterSel, r.exporters, s.exporter)).catch(showError);

  // The interface picker lists the interfaces the flows of this range name,
  // in or out; where this tmsd keeps no interface tables it stays disabled
  // and says which key turns them on, rather than offering 400s.
  async function setUpInterfaces() {
    const caps = await api.capabilitiesOr(showError);
    if (!caps.scopes.includes('if')) {
      ifSel.disabled = dirSel.disabled = true;
      const key = caps.off.if || '';
      ifHint.replaceChildren(...(key
        ? ['interface scopes need ', h('code', {}, key + ': true'), ' in the configuration (and a restart)']
        : ['this tmsd answers no interface scope']));
      ifHint.hidden = false;
      return;
    }
    const lists = await Promise.all(['in_if', 'out_if'].map((by) =>
      api.top({ by, n: IF_LIST_N, metric: 'bytes', from: s.from, to: s.to }, ctx.signal)));
    const labels = new Map();
    for (const r of lists.flatMap((l) => l.rows)) labels.set(r.key, r.label || r.key); // "192.0.2.1 unknown interface" for ifIndex 0
    labels.delete(s.if); // already there, selected
    const keys = [...labels.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    ifSel.append(...keys.map((k) => h('option', { value: k }, labels.get(k))));
  }
  const pickers = setUpInterfaces().catch(showError);

  async function load() {
    const scope = scopeOf(s);
    const top = await api.top({ by: s.by, n: s.n, metric: s.metric, from: s.from, to: s.to, compare: s.compare, ...scope }, ctx.signal);
    // The series uses the answer's resolved range: "now" must not move between calls.
    const from = Date.parse(top.from);
    const to = Date.parse(top.to);
    const off = compareOffset(s.compare, from, to);
    const step = off ? compareStep(to - from, off) : chooseStep(to - from);
    const ser = await api.series({ from: top.from, to: top.to, step: step + 's', by: s.by, n: s.n, metric: s.metric,
      compare: s.compare, ...scope }, ctx.signal);
    const v = perSecond(s.metric, step);
    const xs = ser.points.map((p) => Date.parse(p.t) / 1000);
    // A key keeps its table row's colour; the series ranks on its own steps
    // and may list a key the table does not (a bound near the cut).
    const rank = new Map(top.rows.map((r, i) => [r.key, i]));
    const colors = top.rows.map((_, i) => PALETTE[i % PALETTE.length]);
    let extra = top.rows.length;
    const layers = (ser.stacked || []).filter((k) => k.key !== 'other').map((k) => {
      const i = rank.has(k.key) ? rank.get(k.key) : extra++;
      return { label: k.label || k.key, color: PALETTE[i % PALETTE.length], values: k.points.map(v) };
    });
    const other = (ser.stacked || []).find((k) => k.key === 'other');
    layers.push({ label: 'everything else', color: OTHER_COLOR, values: other ? other.points.map(v) : [] });
    if (ser.compare) {
      // Point i of the earlier period is laid on point i of this one.
      layers.push({ label: 'total, ' + (COMPARES[s.compare] || s.compare + ' before'), color: '#e8e8e8', dash: true, values: ser.compare.points.map(v) });
      note.textContent = `Dashed: the total from ${fmt.localTime(new Date(ser.compare.from))} to ${fmt.localTime(new Date(ser.compare.to))}, laid over this range. Δ compares each row with the same key then.`;
    } else {
      note.textContent = `One point per ${step >= 3600 ? step / 3600 + ' h' : step / 60 + ' min'}; drag across the chart to zoom, click a row to drill down.`;
    }
    chartEl.dataset.step = step + 's';
    chart.setData(xs, layers);
    tableEl.replaceChildren(topTable(top, { metric: s.metric, colors,
      onRow: (r) => go('/key', { by: s.by, key: r.key, label: r.label !== r.key ? r.label : '', metric: s.metric, from: s.from, to: s.to, compare: s.compare, ...scope }) }));
    root.dataset.exact = String(top.exact);
    await dataNote(where, { empty: !top.total.bytes, from: top.from, to: top.to, scoped: SCOPES.some((k) => s[k]),
      onJump: (r) => set(r), signal: ctx.signal });
  }

  ctx.refreshing(isLive(s.to), 60_000, async (first) => {
    try {
      await load();
    } catch (e) {
      showError(e);
      panelError(tableEl, e);
      if (!chart.u) panelError(chartEl, e);
    } finally {
      if (first) await pickers; // ready once the pickers are filled too
    }
  });
}
