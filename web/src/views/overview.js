// Overview: total bps and pps over the range (refreshed every 10 s while the
// range ends now, so the open minute grows), the top panels, and the exporters.
import * as api from '../api.js';
import * as fmt from '../format.js';
import { TimeChart, PALETTE } from '../charts.js';
import { ApiError } from '../api.js';
import { h, panelError, showError, rangePicker, topTable } from '../ui.js';
import { go, href, isLive, resolveTime, chooseStep, rfc3339 } from '../state.js';
import { dataNote, noteBox } from '../nodata.js';
import { exporterName } from './top.js';

export const PANELS = [
  { by: 'app', title: 'Applications' },
  { by: 'srcip', title: 'Source IPs' },
  { by: 'dstip', title: 'Destination IPs' },
  // Either side: a download's bytes go to the client's ephemeral port.
  { by: 'port', title: 'Ports' },
  { by: 'proto', title: 'Protocols' },
  // Where the traffic goes, from the GeoIP databases: a bar per country or
  // AS with its share (bars: the share column takes most of the width).
  // Optional: a tmsd from before enrichment answers 400 to these dimensions.
  { by: 'dstcountry', title: 'Destination countries', bars: true, optional: true },
  { by: 'dstas', title: 'Destination ASes', bars: true, optional: true },
];

const REFRESH_MS = 10_000;

export function overview(root, params, ctx) {
  const from = params.get('from') || '-1h';
  const to = params.get('to') || 'now';
  const scope = { exporter: params.get('exporter') || '', proto: params.get('proto') || '' };
  const keep = { from, to, ...scope };
  const setRange = (r) => go('/', { ...keep, ...r });

  const kpis = h('div', { class: 'kpis' });
  const where = noteBox();
  const bpsEl = h('div');
  const ppsEl = h('div');
  const onZoom = (a, b) => setRange({ from: rfc3339(a), to: rfc3339(b) });
  const bpsChart = ctx.own(new TimeChart(bpsEl, { height: 220, fmt: fmt.bps, onZoom }));
  const ppsChart = ctx.own(new TimeChart(ppsEl, { height: 140, fmt: fmt.pps, onZoom }));
  const panels = PANELS.map((p) => ({ ...p, body: h('div', { class: 'panel-body' }, h('p', { class: 'loading' }, 'loading…')) }));
  const expBody = h('div', { class: 'panel-body' }, h('p', { class: 'loading' }, 'loading…'));

  root.replaceChildren(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Overview'), rangePicker(from, to, setRange),
      scope.exporter || scope.proto ? h('span', { class: 'scope' }, 'scope: ' + (scope.exporter ? 'exporter ' + scope.exporter : 'proto ' + scope.proto),
        h('a', { href: href('/', { from, to }) }, ' ×')) : null),
    h('section', { class: 'card traffic' }, h('div', { class: 'card-head' }, h('h2', {}, 'Traffic'), kpis), where,
      h('h3', {}, 'bits per second'), bpsEl, h('h3', {}, 'packets per second'), ppsEl),
    h('section', { class: 'panels' }, panels.map((p) => h('div', { class: 'card panel' + (p.bars ? ' bars' : ''), dataset: { panel: p.by } },
      h('div', { class: 'card-head' }, h('h2', {}, h('a', { href: href('/top', { by: p.by, ...keep }) }, p.title)),
        h('span', { class: 'muted' }, 'by bytes')), p.body))),
    h('section', { class: 'card', dataset: { panel: 'exporters' } }, h('div', { class: 'card-head' }, h('h2', {}, 'Exporters'),
      h('a', { href: href('/interfaces', { from, to }) }, 'interfaces →')), expBody),
  );

  async function loadTraffic(signal) {
    const now = new Date();
    const f = resolveTime(from, now);
    const t = resolveTime(to, now);
    const step = f && t ? chooseStep(t - f) : 60;
    const s = await api.series({ from, to, step: step + 's', ...scope }, signal);
    const xs = s.points.map((p) => Date.parse(p.t) / 1000);
    bpsChart.setData(xs, [{ label: 'bps', color: PALETTE[0], values: s.points.map((p) => p.bps) }]);
    ppsChart.setData(xs, [{ label: 'pps', color: PALETTE[2], values: s.points.map((p) => p.pps) }]);
    kpis.replaceChildren(...trafficKpis(s, step, now, isLive(to)));
    await dataNote(where, { empty: s.points.every((p) => !p.bytes), from: s.from, to: s.to,
      scoped: !!(scope.exporter || scope.proto), onJump: setRange, signal });
  }

  async function loadPanel(p, signal) {
    let r;
    try {
      r = await api.top({ by: p.by, n: 10, from, to, ...scope }, signal);
    } catch (e) {
      if (!(p.optional && e instanceof ApiError && e.status === 400 && e.parameter === 'by')) throw e;
      p.body.replaceChildren(h('p', { class: 'muted note' }, 'This tmsd does not know the dimension ' + p.by + ' (a version before GeoIP enrichment).'));
      return;
    }
    p.body.replaceChildren(topTable(r, { compact: true, onRow: (row) => go('/key', { by: p.by, key: row.key, label: row.label !== row.key ? row.label : '', ...keep }) }));
  }

  async function loadExporters(signal) {
    // flows/s is what the store saw over the last 5 minutes, not a decoder counter:
    // it reads the same after a restart and needs no second poll.
    const [e, recent] = await Promise.all([
      api.exporters(signal),
      api.top({ by: 'exporter', metric: 'flows', n: 1000, from: '-5m', to: 'now' }, signal),
    ]);
    expBody.replaceChildren(exportersTable(e.exporters, recent, (addr) => go('/top', { by: 'app', exporter: addr, from, to })));
  }

  const jobs = [loadTraffic, ...panels.map((p) => (signal) => loadPanel(p, signal)), loadExporters];
  const targets = [bpsEl, ...panels.map((p) => p.body), expBody];
  ctx.refreshing(isLive(to), REFRESH_MS, async () => {
    const results = await Promise.allSettled(jobs.map((j) => j(ctx.signal)));
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        showError(r.reason);
        if (i > 0 || !bpsChart.u) panelError(targets[i], r.reason);
      }
    });
  });
}

// trafficKpis: the range's average and peak, and the open minute so far.
function trafficKpis(s, step, now, live) {
  const pts = s.points;
  const secs = (Date.parse(s.to) - Date.parse(s.from)) / 1000;
  const total = pts.reduce((a, p) => a + p.bytes, 0);
  const packets = pts.reduce((a, p) => a + p.packets, 0);
  const peak = pts.reduce((a, p) => (p.bps > a.bps ? p : a), { bps: 0 });
  const out = [
    kpi('average', fmt.bps((total * 8) / secs), fmt.pps(packets / secs)),
    kpi('peak', fmt.bps(peak.bps), peak.t ? fmt.localTime(new Date(peak.t)) : '—', peak.t ? fmt.utcTime(new Date(peak.t)) : ''),
    kpi('volume', fmt.bytes(total), fmt.count(packets) + ' packets'),
  ];
  const last = pts[pts.length - 1];
  if (live && last && step === 60) {
    // The open minute: its rate over the seconds elapsed so far, not over 60.
    const elapsed = Math.max(1, (now - Date.parse(last.t)) / 1000);
    if (elapsed <= 60) out.unshift(kpi('this minute so far', fmt.bps((last.bytes * 8) / elapsed), fmt.pps(last.packets / elapsed), 'live: refreshed every 10 s', 'live'));
  }
  return out;
}

function kpi(label, value, sub, title, cls) {
  return h('div', { class: 'kpi ' + (cls || ''), title }, h('span', { class: 'label' }, label), h('span', { class: 'value' }, value), h('span', { class: 'sub' }, sub));
}

// EXPORTER_STATES are an exporter's health, worst first, as the exporters
// table shows it: a word and a dot (its colour is never the only sign).
export const EXPORTER_STATES = {
  failing: { text: 'only errors', dot: 'bad', help: 'datagrams arrived, none decoded into a flow: every one was an error' },
  silent: { text: 'silent', dot: 'stale', help: 'nothing received for over 5 minutes' },
  noflows: { text: 'no flows', dot: 'stale', help: 'datagrams arrived, without a flow so far (templates or sFlow counters only)' },
  errors: { text: 'errors', dot: 'warn', help: 'flows decoded, and some datagrams refused (errors by reason on hover)' },
  ok: { text: 'ok', dot: 'ok', help: 'flows decoded, no error' },
};

// exporterState reads an exporter of /exporters: its flows and errors since
// tmsd started, and when it last sent.
export function exporterState(e, now = new Date()) {
  const nerr = Object.values(e.errors || {}).reduce((a, n) => a + n, 0);
  if (!e.flows && nerr) return 'failing';
  if (now - new Date(e.last_seen) > 5 * 60e3) return 'silent';
  if (!e.flows) return 'noflows';
  return nerr ? 'errors' : 'ok';
}

function exportersTable(list, recent, onRow) {
  if (!list.length) return h('p', { class: 'nodata' }, 'No exporter has sent anything since tmsd started.');
  const secs = (Date.parse(recent.to) - Date.parse(recent.from)) / 1000;
  const flows = new Map(recent.rows.map((r) => [r.key, r.flows / secs]));
  const now = new Date();
  const rows = list.map((e) => {
    const seen = new Date(e.last_seen);
    const errs = Object.entries(e.errors || {});
    const nerr = errs.reduce((a, [, n]) => a + n, 0);
    const state = exporterState(e, now);
    const st = EXPORTER_STATES[state];
    return h('tr', { class: 'clickable', dataset: { key: e.address, state }, tabindex: '0', onclick: () => onRow(e.address) },
      h('td', { title: e.address }, h('span', { class: 'dot ' + st.dot, title: st.text + ': ' + st.help }), exporterName(e)),
      h('td', {}, (e.protocols || []).join(', ')),
      h('td', { title: fmt.utcTime(seen) }, fmt.ago(seen, now)),
      h('td', { class: 'num' }, fmt.fps(flows.get(e.address) || 0)),
      h('td', { class: 'num' }, fmt.count(e.datagrams)),
      h('td', { class: 'num ' + (nerr ? 'bad' : ''), title: errs.map(([k, n]) => `${k}: ${n}`).join('\n') || 'none' }, nerr ? fmt.count(nerr) : '0'),
      h('td', { class: 'num' }, e.templates),
      h('td', { class: 'num', title: e.sampling_source ? 'from ' + e.sampling_source : '' }, e.sampling_rate > 1 ? '1:' + e.sampling_rate : e.sampling_rate === 1 ? 'none' : '—'),
      h('td', { class: 'num', title: 'flows whose timestamp tmsd replaced by the receive time' }, fmt.count(e.time_corrections)),
      h('td', { class: 'state state-' + state, title: st.help }, st.text),
    );
  });
  const legend = h('p', { class: 'muted note legend' }, h('span', {}, 'status:'), Object.values(EXPORTER_STATES).map((st) =>
    h('span', { class: 'legend-item', dataset: { state: st.text } }, h('span', { class: 'dot ' + st.dot }), h('b', {}, st.text), ': ' + st.help)));
  return h('div', {}, h('table', { class: 'exporters' },
    h('thead', {}, h('tr', {}, ['exporter', 'protocols', 'last seen', 'flows/s (5 min)', 'datagrams', 'errors', 'templates', 'sampling', 'time fixes', 'status'].map((c, i) => h('th', { class: i >= 3 && i < 9 ? 'num' : '' }, c)))),
    h('tbody', {}, rows)), legend);
}
