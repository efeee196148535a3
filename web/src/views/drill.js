// Drill-down on one key (a clicked row): its series with its share of the
// total, an optional comparison (the API's compare=), and breakdowns of the
// traffic within the key wherever this tmsd keeps tables scoped by it
// (api.capabilities); where it could but they are off, the key that turns them on.
import * as api from '../api.js';
import * as fmt from '../format.js';
import { TimeChart, PALETTE } from '../charts.js';
import { h, showError, panelError, rangePicker, topTable } from '../ui.js';
import { go, href, isLive, chooseStep, compareStep, compareOffset, rfc3339 } from '../state.js';
import { DIMS, COMPARES, SCOPES, stateOf, scopeOf, scopeText, perSecond } from './top.js';
import { dataNote, noteBox } from '../nodata.js';

// BREAKDOWNS: what to list inside a key of each dimension (an app → its hosts
// and ports; a host → its apps and peers; an interface → its apps, hosts,
// ports and where the traffic goes; a protocol or an exporter → everything),
// all within the tables its scope keeps.
export const BREAKDOWNS = {
  app: ['srcip', 'dstip', 'port'],
  srcip: ['app', 'peer'], dstip: ['app', 'peer'], ip: ['app', 'peer'], peer: ['app', 'peer'],
  proto: ['app', 'srcip', 'dstip', 'port'],
  exporter: ['app', 'srcip', 'dstip', 'in_if', 'out_if'],
  in_if: ['app', 'srcip', 'dstip', 'port', 'out_if'], out_if: ['app', 'srcip', 'dstip', 'port', 'in_if'],
};

// keyScope is the API scope holding a key's traffic (null: none, as for ports).
export function keyScope(by, key) {
  switch (by) {
    case 'exporter': case 'proto': case 'app': return { [by]: key };
    case 'srcip': case 'dstip': case 'ip': case 'peer': return { ip: key };
    case 'in_if': return { if: key, dir: 'in' };
    case 'out_if': return { if: key, dir: 'out' };
  }
  return null;
}

const PANEL_NAMES = { peer: 'peers', port: 'ports' };
const WHAT = { app: 'application', ip: 'address', if: 'interface' };

// offNote says plainly why there is no breakdown, and what would give one.
function offNote(by, filter, configKey) {
  const what = DIMS[by] || by;
  if (!filter) return ['tmsd keeps no tables per ' + what + ': there is no breakdown within one.'];
  if (!configKey) return [`This tmsd answers no ${filter}= scope: no breakdown within this ${what}.`];
  const how = filter === 'if' ? [h('code', {}, configKey + ': true')]
    : [h('code', {}, configKey + ': 100'), ' (the tables of each minute\u2019s top 100 applications and addresses)'];
  return [`Breakdowns within this ${what} need per-${WHAT[filter] || filter} tables, which this tmsd does not keep. Set `,
    ...how, ' in its configuration and restart: the minutes from then on have them.'];
}

export function drillView(root, params, ctx) {
  const s = stateOf(params);
  const key = params.get('key') || '';
  const name = params.get('label') || key; // "tcp" for the key 6
  const set = (c) => go('/key', { ...s, key, ...c });
  const scope = scopeOf(s);
  const noScope = Object.fromEntries(SCOPES.map((k) => [k, '']));
  const inner = keyScope(s.by, key);
  const filter = inner ? Object.keys(inner)[0] : '';
  const bpsEl = h('div');
  const ppsEl = h('div');
  const facts = h('div', { class: 'kpis' });
  const where = noteBox();
  const onZoom = (a, b) => set({ from: rfc3339(a), to: rfc3339(b) });
  const bpsChart = ctx.own(new TimeChart(bpsEl, { height: 240, fmt: fmt.bps, onZoom }));
  const ppsChart = ctx.own(new TimeChart(ppsEl, { height: 140, fmt: fmt.pps, onZoom }));
  const panelsEl = h('section', { class: 'panels' });
  const compareSel = h('select', { name: 'compare', onchange: (e) => set({ compare: e.target.value }) },
    Object.entries(COMPARES).map(([v, l]) => h('option', { value: v, selected: v === s.compare }, l)));
  const within = scopeText(s);
  root.replaceChildren(
    h('div', { class: 'toolbar' },
      h('h1', {}, h('a', { href: href('/top', { ...s }) }, DIMS[s.by] || PANEL_NAMES[s.by] || s.by), ' ', h('span', { class: 'drill-key', title: key }, name)),
      rangePicker(s.from, s.to, set)),
    h('div', { class: 'controls' }, h('label', {}, 'compare with ', compareSel),
      within ? h('span', { class: 'scope' }, within) : null),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Traffic of ' + name), facts), where,
      h('h3', {}, 'bits per second'), bpsEl, h('h3', {}, 'packets per second'), ppsEl),
    panelsEl,
  );

  async function loadSeries() {
    const t = await api.top({ by: s.by, n: 1, from: s.from, to: s.to, ...scope }, ctx.signal); // resolves the range
    const from = Date.parse(t.from);
    const to = Date.parse(t.to);
    const off = compareOffset(s.compare, from, to);
    const step = off ? compareStep(to - from, off) : chooseStep(to - from);
    const abs = { from: t.from, to: t.to, step: step + 's', ...scope };
    const [ks, total] = await api.inParallel([
      () => api.series({ ...abs, by: s.by, key, compare: s.compare }, ctx.signal),
      () => api.series(abs, ctx.signal),
    ]);
    const prev = ks.compare;
    const xs = ks.points.map((p) => Date.parse(p.t) / 1000);
    const label = (COMPARES[s.compare] || s.compare + ' before');
    const bps = [{ label: name, color: PALETTE[0], values: ks.points.map((p) => p.bps) }];
    const pps = [{ label: name, color: PALETTE[2], values: ks.points.map((p) => p.pps) }];
    if (prev) {
      // Point i of the earlier period is laid on point i of this one.
      bps.push({ label, color: '#e8e8e8', dash: true, values: prev.points.map((p) => p.bps) });
      pps.push({ label, color: '#e8e8e8', dash: true, values: prev.points.map((p) => p.pps) });
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
    // The key had nothing here: say where the data is (this key's or not, the range has none at all).
    await dataNote(where, { empty: !kb, from: t.from, to: t.to, scoped: true, onJump: (r) => set(r), signal: ctx.signal });
  }

  async function loadPanel(p) {
    const q = { by: p.by, n: 10, metric: s.metric, from: s.from, to: s.to, ...inner };
    const r = await api.top(q, ctx.signal);
    p.body.replaceChildren(topTable(r, { compact: true, metric: s.metric,
      onRow: (row) => go('/key', { by: p.by, key: row.key, label: row.label !== row.key ? row.label : '', metric: s.metric, from: s.from, to: s.to, compare: s.compare, ...noScope, ...inner }) }));
  }

  // panels are the breakdowns this tmsd can answer, known once it said what it keeps.
  let panels = null;
  async function setUpPanels() {
    const caps = await api.capabilitiesOr(showError);
    if (inner && caps.scopes.includes(filter)) {
      panels = (BREAKDOWNS[s.by] || []).map((by) => ({ by, body: h('div', { class: 'panel-body' }, h('p', { class: 'loading' }, 'loading…')) }));
      panelsEl.replaceChildren(...panels.map((p) => h('div', { class: 'card panel', dataset: { panel: p.by } },
        h('div', { class: 'card-head' }, h('h2', {}, (PANEL_NAMES[p.by] || DIMS[p.by] || p.by) + ' within ' + name)), p.body)));
    } else {
      panels = [];
      panelsEl.replaceChildren(h('div', { class: 'card panel', dataset: { panel: 'off' } },
        h('p', { class: 'muted note breakdown-off' }, ...offNote(s.by, filter, caps.off[filter] || ''))));
    }
  }

  ctx.refreshing(isLive(s.to), 60_000, async () => {
    const [caps, ...res] = await Promise.allSettled([panels ? null : setUpPanels(), loadSeries()]);
    const all = [caps, ...res, ...(await Promise.allSettled(panels.map(loadPanel)))];
    const targets = [null, bpsEl, ...panels.map((p) => p.body)];
    all.forEach((r, i) => {
      if (r.status === 'rejected') {
        showError(r.reason);
        if (i > 1 || (i === 1 && !bpsChart.u)) panelError(targets[i], r.reason);
      }
    });
  });
}

function fact(label, value, sub) {
  return h('div', { class: 'kpi' }, h('span', { class: 'label' }, label), h('span', { class: 'value' }, value), h('span', { class: 'sub' }, sub));
}
