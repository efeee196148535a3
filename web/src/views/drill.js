// Drill-down on one key (a clicked row): its series with its share of the
// total, an optional comparison, and breakdowns of the traffic within the key
// wherever the API can scope by that key's dimension (api.caps).
import * as api from '../api.js';
import * as fmt from '../format.js';
import { TimeChart, PALETTE } from '../charts.js';
import { h, showError, panelError, rangePicker, topTable } from '../ui.js';
import { go, href, isLive, chooseStep, rfc3339, compareOffset } from '../state.js';
import { DIMS, COMPARES, stateOf, perSecond, shifted } from './top.js';

// BREAKDOWNS: what to list inside a key of each dimension (an app → its hosts
// and ports; a host → its apps and peers; a protocol → everything).
export const BREAKDOWNS = {
  app: ['srcip', 'dstip', 'port'],
  srcip: ['app', 'dstip', 'port'], dstip: ['app', 'srcip', 'port'], ip: ['app', 'ip', 'port'],
  srcport: ['app', 'srcip', 'dstip'], dstport: ['app', 'srcip', 'dstip'], port: ['app', 'srcip', 'dstip'],
  proto: ['app', 'srcip', 'dstip', 'port'],
  exporter: ['app', 'srcip', 'dstip', 'in_if', 'out_if'],
  in_if: ['app', 'srcip', 'dstip'], out_if: ['app', 'srcip', 'dstip'],
};

export function drillView(root, params, ctx) {
  const s = stateOf(params);
  const key = params.get('key') || '';
  const name = params.get('label') || key; // "tcp" for the key 6
  const set = (c) => go('/key', { ...s, key, ...c });
  const scope = { exporter: s.exporter, proto: s.proto };
  const bpsEl = h('div');
  const ppsEl = h('div');
  const facts = h('div', { class: 'kpis' });
  const onZoom = (a, b) => set({ from: rfc3339(a), to: rfc3339(b) });
  const bpsChart = ctx.own(new TimeChart(bpsEl, { height: 240, fmt: fmt.bps, onZoom }));
  const ppsChart = ctx.own(new TimeChart(ppsEl, { height: 140, fmt: fmt.pps, onZoom }));
  const scopeParam = api.caps.scopes[s.by];
  const breakdowns = scopeParam ? (BREAKDOWNS[s.by] || []).filter((d) => d !== s.by || d === 'ip') : [];
  const panels = breakdowns.map((by) => ({ by, body: h('div', { class: 'panel-body' }, h('p', { class: 'loading' }, 'loading…')) }));
  const compareSel = h('select', { name: 'compare', onchange: (e) => set({ compare: e.target.value }) },
    Object.entries(COMPARES).map(([v, l]) => h('option', { value: v, selected: v === s.compare }, l)));
  root.replaceChildren(
    h('div', { class: 'toolbar' },
      h('h1', {}, h('a', { href: href('/top', { ...s }) }, DIMS[s.by] || s.by), ' ', h('span', { class: 'drill-key', title: key }, name)),
      rangePicker(s.from, s.to, set)),
    h('div', { class: 'controls' }, h('label', {}, 'compare with ', compareSel),
      s.exporter || s.proto ? h('span', { class: 'scope' }, 'within ' + (s.exporter ? 'exporter ' + s.exporter : 'protocol ' + s.proto)) : null),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Traffic of ' + name), facts),
      h('h3', {}, 'bits per second'), bpsEl, h('h3', {}, 'packets per second'), ppsEl),
    // replaceChildren would print a null: no section at all without breakdowns.
    ...(panels.length ? [h('section', { class: 'panels' }, panels.map((p) => h('div', { class: 'card panel', dataset: { panel: p.by } },
      h('div', { class: 'card-head' }, h('h2', {}, (p.by === 'ip' ? 'peers' : DIMS[p.by]) + ' within ' + name)), p.body)))] : []),
  );

  async function loadSeries() {
    const t = await api.top({ by: s.by, n: 1, from: s.from, to: s.to, ...scope }, ctx.signal); // resolves the range
    const from = Date.parse(t.from);
    const to = Date.parse(t.to);
    const step = chooseStep(to - from);
    const abs = { from: t.from, to: t.to, step: step + 's', ...scope };
    const calls = [() => api.series({ ...abs, by: s.by, key }, ctx.signal), () => api.series(abs, ctx.signal)];
    const off = compareOffset(s.compare, from, to);
    if (off) calls.push(() => api.series({ ...abs, by: s.by, key, from: rfc3339(new Date(from - off)), to: rfc3339(new Date(to - off)) }, ctx.signal));
    const [ks, total, prev] = await api.inParallel(calls);
    const xs = ks.points.map((p) => Date.parse(p.t) / 1000);
    const label = (COMPARES[s.compare] || s.compare + ' before');
    const bps = [{ label: name, color: PALETTE[0], values: ks.points.map((p) => p.bps) }];
    const pps = [{ label: name, color: PALETTE[2], values: ks.points.map((p) => p.pps) }];
    if (prev) {
      bps.push({ label, color: '#e8e8e8', dash: true, values: shifted(prev.points, off, xs, (p) => p.bps) });
      pps.push({ label, color: '#e8e8e8', dash: true, values: shifted(prev.points, off, xs, (p) => p.pps) });
    }
    bpsChart.setData(xs, bps);
    ppsChart.setData(xs, pps);
    const sum = (pts, f) => pts.reduce((a, p) => a + p[f], 0);
    const secs = (to - from) / 1000;
    const kb = sum(ks.points, 'bytes');
    const err = sum(ks.points, 'error');
    const items = [
      fact('average', fmt.bps((kb * 8) / secs), fmt.pps(sum(ks.points, 'packets') / secs)),
      fact('volume', fmt.bytes(kb), fmt.count(sum(ks.points, 'flows')) + ' flows'),
      fact('share of total', fmt.percent(kb / (sum(total.points, 'bytes') || 1)), 'of ' + fmt.bytes(sum(total.points, 'bytes'))),
    ];
    if (prev) items.push(fact('change', fmt.delta(kb, sum(prev.points, 'bytes')), 'vs ' + label));
    if (err > 0) items.push(fact('error ±', fmt.bytes(err), 'most it may be under-counted'));
    facts.replaceChildren(...items);
  }

  async function loadPanel(p) {
    const q = { by: p.by, n: 10, metric: s.metric, from: s.from, to: s.to, [scopeParam]: key };
    const r = await api.top(q, ctx.signal);
    p.body.replaceChildren(topTable(r, { compact: true, metric: s.metric,
      onRow: (row) => go('/key', { by: p.by, key: row.key, label: row.label !== row.key ? row.label : '', metric: s.metric, from: s.from, to: s.to, [scopeParam]: key }) }));
  }

  const targets = [bpsEl, ...panels.map((p) => p.body)];
  let running = false;
  async function refresh(first) {
    if (running) return;
    running = true;
    const res = await Promise.allSettled([loadSeries(), ...panels.map(loadPanel)]);
    running = false;
    res.forEach((r, i) => {
      if (r.status === 'rejected') {
        showError(r.reason);
        if (i > 0 || !bpsChart.u) panelError(targets[i], r.reason);
      }
    });
    if (first) ctx.ready();
  }
  refresh(true);
  if (isLive(s.to)) ctx.every(60_000, () => refresh(false));
}

function fact(label, value, sub) {
  return h('div', { class: 'kpi' }, h('span', { class: 'label' }, label), h('span', { class: 'value' }, value), h('span', { class: 'sub' }, sub));
}
