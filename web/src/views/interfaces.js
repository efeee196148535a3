// Interfaces: per exporter and ifIndex, in and out bps from the flows (the
// in_if and out_if dimensions), the interface's name where tmsd knows it
// (configuration, NetFlow/IPFIX options data, SNMP: /exporters'
// interface_names) and, where sFlow counter samples arrive, the interface's
// speed and its utilization from the octet counters between two polls; with
// no counters, the named interface's speed and the flows' rate over it.
import * as api from '../api.js';
import * as fmt from '../format.js';
import { h, showError, panelError, rangePicker } from '../ui.js';
import { go, isLive } from '../state.js';
import { dataNote, noteBox } from '../nodata.js';
import { exporterName } from './top.js';

const REFRESH_MS = 10_000;
// UNKNOWN_IF is the ifIndex of no known interface: the decoder maps sFlow's
// 0x3fffffff to it, and NetFlow exporters send it.
const UNKNOWN_IF = 0;

// NAME_SOURCES say where an interface's name came from (interface_names' source).
const NAME_SOURCES = { static: 'the configuration (interfaces:)', options: 'the exporter\u2019s options data', snmp: 'SNMP (ifName, ifAlias)' };

// nameCell shows an interface's name and, below, its description; the
// source of both on hover.
function nameCell(n) {
  if (!n || !n.name) return h('td', { class: 'ifname' });
  const from = 'name from ' + (NAME_SOURCES[n.source] || n.source || 'unknown');
  return h('td', { class: 'ifname', title: from, dataset: { source: n.source || '' } },
    h('span', { class: 'name' }, n.name), n.description ? h('span', { class: 'desc muted' }, n.description) : null);
}

// splitIf splits "exporter:ifIndex" (the exporter may be IPv6).
export function splitIf(key) {
  const i = key.lastIndexOf(':');
  return [key.slice(0, i), Number(key.slice(i + 1))];
}

export function interfacesView(root, params, ctx) {
  const from = params.get('from') || '-1h';
  const to = params.get('to') || 'now';
  const body = h('div', { class: 'panel-body' }, h('p', { class: 'loading' }, 'loading…'));
  const where = noteBox();
  const setRange = (r) => go('/interfaces', r);
  root.replaceChildren(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Interfaces'), rangePicker(from, to, setRange)),
    h('p', { class: 'muted note' }, 'In and out bps from the flows (ifIndex as the exporters report it); names from the configuration, the exporters\u2019 options data or SNMP (their source on hover). ',
      'Utilization is the sFlow octet counters\u2019 rate between two samples against ifSpeed; until a second sample arrives, or with no counters but a speed from the configuration or SNMP, ',
      'the flows\u2019 rate is used (marked ≈). ',
      'ifIndex 0 (sFlow\u2019s 0x3fffffff) is the exporter\u2019s unknown interface: traffic it could not place, with no speed (unless the configuration gives one).'),
    where,
    body,
  );
  // The last counters seen per exporter:ifIndex, to take rates from.
  const last = new Map();
  const rates = new Map();

  async function load() {
    const [inT, outT, ex] = await Promise.all([
      api.top({ by: 'in_if', n: 1000, from, to }, ctx.signal),
      api.top({ by: 'out_if', n: 1000, from, to }, ctx.signal),
      api.exporters(ctx.signal),
    ]);
    const rows = new Map(); // exporter → ifIndex → {in, out, counters, label}
    const row = (exp, idx) => {
      if (!rows.has(exp)) rows.set(exp, new Map());
      const m = rows.get(exp);
      if (!m.has(idx)) m.set(idx, { in: 0, out: 0, counters: null, label: '' });
      return m.get(idx);
    };
    // The API's label ("seoul-bb1 xe-0/0/1 (to KT)") names the drill-down.
    for (const r of inT.rows) Object.assign(row(...splitIf(r.key)), { in: r.bps, label: r.label !== r.key ? r.label : '' });
    for (const r of outT.rows) {
      const x = row(...splitIf(r.key));
      x.out = r.bps;
      if (!x.label && r.label !== r.key) x.label = r.label;
    }
    const exps = new Map(ex.exporters.map((e) => [e.address, e]));
    for (const e of ex.exporters) {
      for (const c of e.interfaces || []) {
        const k = e.address + ':' + c.IfIndex;
        row(e.address, c.IfIndex).counters = c;
        const p = last.get(k);
        const dt = p ? (Date.parse(c.Updated) - Date.parse(p.Updated)) / 1000 : 0;
        if (dt > 0 && c.InOctets >= p.InOctets && c.OutOctets >= p.OutOctets) {
          rates.set(k, { in: ((c.InOctets - p.InOctets) * 8) / dt, out: ((c.OutOctets - p.OutOctets) * 8) / dt, dt });
        }
        last.set(k, c);
      }
    }
    await dataNote(where, { empty: !inT.total.bytes && !outT.total.bytes, from: inT.from, to: inT.to, onJump: setRange, signal: ctx.signal });
    if (!rows.size) {
      body.replaceChildren(h('p', { class: 'nodata' }, 'No interface in this range: no flow carried an ifIndex and no sFlow counter sample arrived.'));
      return;
    }
    const cards = [...rows.keys()].sort().map((exp) => {
      const ifs = [...rows.get(exp).entries()].sort((a, b) => a[0] - b[0]);
      const e = exps.get(exp);
      const names = (e && e.interface_names) || {};
      return h('section', { class: 'card', dataset: { exporter: exp } },
        h('h2', {}, 'exporter ' + (e ? exporterName(e) : exp)),
        h('table', { class: 'ifaces' },
          h('thead', {}, h('tr', {}, ['ifIndex', 'name', 'in bps', 'out bps', 'speed', 'in util', 'out util', 'status'].map((c, i) => h('th', { class: i > 1 ? 'num' : '' }, c)))),
          h('tbody', {}, ifs.map(([idx, r]) => {
            const key = exp + ':' + idx;
            const c = r.counters;
            const n = names[String(idx)];
            // The unknown interface has no link to fill: pmacct gives it a made-up 100 Mbps.
            const unknown = idx === UNKNOWN_IF;
            // ifSpeed of the sFlow counters, else the named interface's speed
            // (configuration, SNMP): a speed given for ifIndex 0 (softflowd's
            // capture interface) is the operator's, and counts.
            const counterSpeed = c && c.Speed && !unknown ? c.Speed : 0;
            const nameSpeed = n && n.speed_mbps ? n.speed_mbps * 1e6 : 0;
            const speed = counterSpeed || nameSpeed;
            const speedFrom = counterSpeed ? 'ifSpeed of the sFlow counter samples' : nameSpeed ? 'speed from ' + (NAME_SOURCES[n.source] || n.source) : '';
            const cr = unknown ? undefined : rates.get(key); // pmacct's unknown interface counts nothing real
            const util = (flowBps, counterBps) => {
              if (!speed) return h('td', { class: 'num' }, '—');
              const v = counterBps != null ? counterBps / speed : flowBps / speed;
              const how = counterBps != null ? `from sFlow counters over ${cr.dt.toFixed(0)} s`
                : counterSpeed ? 'from the flows (no second counter sample yet)' : 'from the flows over the interface\u2019s speed (no sFlow counters)';
              return h('td', { class: 'num util', title: how },
                h('span', { class: 'bar', style: `width:${Math.min(100, v * 100).toFixed(1)}%` }), (counterBps != null ? '' : '≈') + fmt.percent(v));
            };
            const label = r.label || (unknown ? exp + ' unknown interface' : '');
            const open = () => go('/key', { by: 'in_if', key, label, from, to });
            return h('tr', { class: 'clickable' + (unknown ? ' unknown-if' : ''), dataset: { key }, tabindex: '0',
              onclick: open, onkeydown: (ev) => ev.key === 'Enter' && open() },
              !unknown ? h('td', {}, String(idx))
                : n && n.name ? h('td', { title: 'ifIndex 0, which this exporter names (softflowd: its capture interface)' }, '0')
                  : h('td', { title: 'ifIndex 0: the exporter named no interface (sFlow 0x3fffffff, NetFlow 0)' }, 'unknown'),
              nameCell(n),
              h('td', { class: 'num' }, fmt.bps(r.in)),
              h('td', { class: 'num' }, fmt.bps(r.out)),
              h('td', { class: 'num', title: speedFrom || null }, speed ? fmt.bps(speed) : '—'),
              util(r.in, cr && cr.in), util(r.out, cr && cr.out),
              h('td', {}, c ? ifStatus(c.Status) : ''));
          }))));
    });
    body.replaceChildren(...cards);
  }

  ctx.refreshing(isLive(to), REFRESH_MS, async () => {
    try {
      await load();
    } catch (e) {
      showError(e);
      panelError(body, e);
    }
  });
}

// ifStatus reads sFlow's ifStatus bits: admin up (bit 0), oper up (bit 1).
function ifStatus(s) {
  if (s & 2) return 'up';
  return s & 1 ? 'down (admin up)' : 'admin down';
}
