// Alerts: what is pending and firing now (GET /alerts/active), the rules in
// force from the file and the API, the silences and the event history. The
// writes (silence, unsilence, an API rule's put and delete) need an admin
// token; each reloads the page and tells the firing banner (tmsd:alerts-changed).
import * as api from '../api.js';
import * as fmt from '../format.js';
import { h, showError, panelError, rangePicker, explain } from '../ui.js';
import { go, href, rfc3339 } from '../state.js';

const REFRESH_MS = 10_000;
const HISTORY_PRESETS = ['1h', '24h', '7d', '30d'];
// KINDS are the history's state= values (an event's kind).
const KINDS = { '': 'all events', firing: 'firing', resolved: 'resolved', repeat: 'repeat', silenced: 'silenced' };
const HISTORY_N = 1000;
// METRIC_VIEW maps a rule's metric (or an alert's unit) to the views' metric=.
const METRIC_VIEW = { pps: 'packets', flows: 'flows', 'flows/s': 'flows' };
const RULE_EXAMPLE = '{"name": "https-busy", "dim": "app", "key": "https", "threshold": "8G", "for": "5m", "severity": "critical"}';

// rateText is a rule's or an alert's rate in human units: its metric is a
// rule's (bps, pps, flows) or an alert's unit (bps, pps, flows/s).
export function rateText(metric, v) {
  switch (metric) {
    case 'pps': return fmt.pps(v);
    case 'flows': case 'flows/s': return fmt.fps(v);
    default: return fmt.bps(v);
  }
}

// keyText is how an alert names its key: its label, its key, or the total
// of its scope for a rule on no dimension.
export const keyText = (a) => a.label || a.key || 'total';

// valueText is an alert's value, "≥" when it is a lower bound (an any-key
// rule's row over a minute's top N had an error bound).
export const valueText = (a, metric = a.metric) => (a.bounded ? '≥\u202f' : '') + rateText(metric, a.value);

// keyHref links an alert or an event to the dashboard view of its key: the
// URL tmsd gave it (alerts.dashboard_url), else the one tmsd would give, from
// an hour before it began to an hour after its minute.
export function keyHref(a) {
  if (a.url) return a.url;
  const q = {};
  const since = Date.parse(a.since);
  const at = Date.parse(a.at);
  const start = since > 0 ? since : at;
  if (start > 0) q.from = rfc3339(new Date(start - 3600e3));
  if (at > 0) q.to = rfc3339(new Date(at + 3600e3));
  for (const [k, v] of new URLSearchParams(a.scope || '')) q[k] = v;
  if (METRIC_VIEW[a.metric]) q.metric = METRIC_VIEW[a.metric];
  if (!a.dim) return href('/top', q);
  q.by = a.dim;
  if (!a.key) return href('/top', q);
  q.key = a.key;
  if (a.label && a.label !== a.key) q.label = a.label;
  return href('/key', q);
}

// duration shows a Go duration as a rule's file writes it: "5m0s" as 5m.
const duration = (d) => (!d ? '0' : String(d).replace(/(\d)m0s$/, '$1m').replace(/(\d)h0m$/, '$1h'));

// timeCell is a time in the browser's zone, UTC and its age on hover.
function timeCell(s, cls = 'time') {
  const d = new Date(s);
  if (!s || Number.isNaN(d.getTime()) || d.getTime() <= 0) return h('td', { class: cls }, '—');
  const td = fmt.timeText(h('td', { class: cls }), d);
  td.title += ' (' + fmt.ago(d) + ')';
  return td;
}

const scopeText = (s) => s || 'whole network';

// condition is a rule's test: "> 8G", or its baseline's parameters.
function condition(r) {
  const b = r.baseline;
  if (!b) {
    // A bare number or SI prefix is in the rule's unit; "8Gbps" says it itself.
    const unit = /^[\d.]+\s*[kMGTP]?$/.test(r.threshold || '') ? ' ' + (r.metric === 'flows' ? 'flows/s' : r.metric || 'bps') : '';
    return `${r.op || '>'} ${r.threshold}${unit}`;
  }
  const parts = [`baseline of ${b.weeks || 4} weeks`, b.ratio ? `> median × ${b.ratio}` : `> median + ${b.deviation} × MAD`];
  if (b.min_volume) parts.push('min volume ' + b.min_volume);
  if (b.min_weeks) parts.push(`at least ${b.min_weeks} weeks of data`);
  return parts.join(', ');
}

// armedButton acts on a second click within 5 s: a rule deleted by a stray
// click is gone (an API rule has no file to come back from).
function armedButton(label, armedLabel, cls, action) {
  let timer = null;
  const reset = () => {
    timer = null;
    b.textContent = label;
    b.classList.remove('armed');
  };
  const b = h('button', { type: 'button', class: cls, onclick: async () => {
    if (!timer) {
      b.textContent = armedLabel;
      b.classList.add('armed');
      timer = setTimeout(reset, 5000);
      return;
    }
    clearTimeout(timer);
    reset();
    b.disabled = true;
    try {
      await action();
    } finally {
      b.disabled = false;
    }
  } }, label);
  return b;
}

export function alertsView(root, params, ctx) {
  const from = params.get('from') || '-24h';
  const to = params.get('to') || 'now';
  const state = Object.hasOwn(KINDS, params.get('state') || '') ? params.get('state') || '' : '';
  const setHistory = (c) => go('/alerts', { from, to, state, ...c });

  const loading = () => h('p', { class: 'loading' }, 'loading…');
  const activeBody = h('div', { class: 'panel-body' }, loading());
  const activeNote = h('span', { class: 'muted' });
  const rulesBody = h('div', { class: 'panel-body' }, loading());
  const silBody = h('div', { class: 'panel-body' }, loading());
  const histBody = h('div', { class: 'panel-body' }, loading());

  // changed reloads the page and the banner after a write.
  const changed = async () => {
    document.dispatchEvent(new CustomEvent('tmsd:alerts-changed'));
    await load();
  };
  // write makes one admin write; a refusal (403 without an admin token) goes
  // to the banner, as the views' errors do.
  const write = async (method, path, body) => {
    try {
      await api.send(method, path, body);
    } catch (e) {
      showError(e);
      return false;
    }
    await changed();
    return true;
  };

  // The silence dialog asks how long and why: the default an hour.
  const silFor = h('input', { name: 'for', value: '1h', required: true, spellcheck: 'false', title: '90s, 30m, 2h, 1d…' });
  const silComment = h('input', { name: 'comment', placeholder: 'optional', spellcheck: 'false' });
  const silWhat = h('p', { class: 'what' });
  let silTarget = null;
  const silDialog = h('dialog', { class: 'silence-dialog' },
    h('form', { method: 'dialog', onsubmit: async (e) => {
      e.preventDefault();
      const t = silTarget;
      if (e.submitter && e.submitter.value === 'cancel') {
        silDialog.close();
        return;
      }
      silDialog.close();
      if (!t) return;
      const body = { rule: t.rule, for: silFor.value.trim() || '1h' };
      if (t.key) body.key = t.key;
      if (silComment.value.trim()) body.comment = silComment.value.trim();
      await write('POST', 'alerts/silences', body);
    } },
    h('h2', {}, 'Silence an alert'), silWhat,
    h('label', {}, 'for ', silFor), h('label', {}, 'comment ', silComment),
    h('p', { class: 'muted' }, 'Its state still changes; nothing is notified until the silence ends. Silences are forgotten on a restart.'),
    h('div', { class: 'buttons' },
      h('button', { type: 'submit', value: 'save' }, 'Silence'),
      h('button', { type: 'submit', value: 'cancel', formnovalidate: true }, 'Cancel'))));
  const askSilence = (a) => {
    silTarget = { rule: a.rule, key: a.key || '' };
    silWhat.textContent = a.rule + (a.key ? ' for ' + keyText(a) : ' (all its keys)');
    silFor.value = '1h';
    silComment.value = '';
    silDialog.showModal();
    silFor.focus();
  };

  // The rule editor: one rule as JSON, PUT under its name.
  const ruleText = h('textarea', { name: 'rule', rows: '4', spellcheck: 'false', placeholder: RULE_EXAMPLE });
  const ruleResult = h('p', { class: 'rule-result', role: 'status' });
  const ruleEditor = h('details', { class: 'rule-editor' },
    h('summary', {}, 'Add or replace an API rule'),
    h('form', { onsubmit: async (e) => {
      e.preventDefault();
      const say = (ok, text) => {
        ruleResult.dataset.state = ok ? 'ok' : 'error';
        ruleResult.textContent = text;
      };
      let rule;
      try {
        rule = JSON.parse(ruleText.value);
      } catch (err) {
        say(false, 'Not JSON: ' + err.message);
        return;
      }
      if (!rule || typeof rule !== 'object' || Array.isArray(rule) || !rule.name) {
        say(false, 'A rule is one JSON object with its "name".');
        return;
      }
      try {
        const got = await api.send('PUT', 'alerts/rules/' + api.seg(rule.name), rule);
        say(true, `Rule ${(got && got.name) || rule.name} saved (origin ${(got && got.origin) || 'api'}).`);
      } catch (err) {
        say(false, err instanceof api.ApiError && err.status === 400 && err.parameter
          ? `tmsd refused the field “${err.parameter}”: ${err.message}` : explain(err));
        return;
      }
      await changed();
    } },
    h('p', { class: 'muted' }, 'One rule as JSON (docs/ALERTS.md), as the configuration file writes it; an admin token is needed. A rule of the configuration file cannot be replaced here.'),
    ruleText, h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Save rule')), ruleResult));

  const kindSelect = h('select', { name: 'state', onchange: () => setHistory({ state: kindSelect.value }) },
    Object.entries(KINDS).map(([k, v]) => h('option', { value: k, selected: k === state }, v)));

  root.replaceChildren(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Alerts')),
    h('section', { class: 'card', dataset: { panel: 'active' } },
      h('div', { class: 'card-head' }, h('h2', {}, 'Firing and pending now'), activeNote), activeBody),
    h('section', { class: 'card', dataset: { panel: 'rules' } },
      h('div', { class: 'card-head' }, h('h2', {}, 'Rules')), rulesBody, ruleEditor),
    h('section', { class: 'card', dataset: { panel: 'silences' } },
      h('div', { class: 'card-head' }, h('h2', {}, 'Silences')), silBody),
    h('section', { class: 'card', dataset: { panel: 'history' } },
      h('div', { class: 'card-head' }, h('h2', {}, 'History'),
        h('div', { class: 'controls' }, rangePicker(from, to, setHistory, HISTORY_PRESETS), h('label', {}, 'kind ', kindSelect))),
      histBody),
    silDialog,
  );

  function renderActive(ans, rules) {
    const all = ans.alerts || [];
    const now = all.filter((a) => a.state);
    const short = all.filter((a) => !a.state && a.reason);
    const n = ans.rules ?? rules.size;
    activeNote.textContent = `${ans.firing ?? 0} firing, ${ans.pending ?? 0} pending; ${n} rule${n === 1 ? '' : 's'} evaluated each minute`;
    const parts = [];
    if (!now.length) {
      parts.push(h('p', { class: 'nodata' }, 'Nothing is firing or pending.'));
    } else {
      const cols = ['state', 'rule', 'severity', 'scope', 'key', 'value', 'threshold', 'since', '', ''];
      parts.push(h('table', { class: 'alerts-active' },
        h('thead', {}, h('tr', {}, cols.map((c, i) => h('th', { class: i === 5 || i === 6 ? 'num' : '' }, c)))),
        h('tbody', {}, now.map((a) => {
          const r = rules.get(a.rule);
          const metric = a.metric || (r && r.metric) || 'bps';
          const op = r && !r.baseline ? r.op || '>' : '>';
          const markers = [];
          if (a.bounded) markers.push(h('span', { class: 'marker bounded', title: 'the value is a lower bound: the key\u2019s row in the minute\u2019s top N had an error bound' }, 'bounded'));
          if (a.silenced) markers.push(h('span', { class: 'marker silenced', title: 'a silence covers it: nothing is notified' }, 'silenced'));
          return h('tr', { class: 'alert-' + a.state, dataset: { rule: a.rule, key: a.key || '', state: a.state }, title: a.summary || null },
            h('td', { class: 'state' }, h('span', { class: 'dot ' + (a.state === 'firing' ? 'bad' : 'warn') }), a.state),
            h('td', { class: 'rule' }, a.rule),
            h('td', { class: 'sev sev-' + a.severity }, a.severity || ''),
            h('td', {}, scopeText(a.scope)),
            h('td', { class: 'key' }, h('a', { href: keyHref({ ...a, metric }), title: (a.dim ? a.dim + ' ' : '') + (a.key || 'total') }, keyText(a))),
            h('td', { class: 'num value' }, valueText(a, metric)),
            h('td', { class: 'num threshold' }, op + ' ' + rateText(metric, a.threshold),
              a.baseline ? h('span', { class: 'muted' }, ' (baseline ' + rateText(metric, a.baseline) + ')') : null),
            timeCell(a.since),
            h('td', { class: 'markers' }, markers),
            h('td', {}, h('button', { type: 'button', class: 'silence', onclick: () => askSilence(a) }, 'Silence')));
        }))));
    }
    if (short.length) {
      parts.push(h('h3', {}, 'Baseline rules without enough history'),
        h('table', { class: 'alerts-short' },
          h('thead', {}, h('tr', {}, ['rule', 'scope', 'key', 'reason', 'at'].map((c) => h('th', {}, c)))),
          h('tbody', {}, short.map((a) => h('tr', { dataset: { rule: a.rule, key: a.key || '' } },
            h('td', {}, a.rule), h('td', {}, scopeText(a.scope)), h('td', { class: 'key' }, keyText(a)),
            h('td', { class: 'reason' }, a.reason), timeCell(a.at))))));
    }
    activeBody.replaceChildren(...parts);
  }

  function renderRules(list) {
    if (!list.length) {
      rulesBody.replaceChildren(h('p', { class: 'nodata' }, 'No rule: add some under alerts.rules in the configuration file, or below.'));
      return;
    }
    const cols = ['name', 'origin', 'scope', 'dim / key', 'metric', 'condition', 'for', 'severity', 'targets', ''];
    rulesBody.replaceChildren(h('table', { class: 'alert-rules' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))),
      h('tbody', {}, list.map((r) => h('tr', { dataset: { rule: r.name, origin: r.origin || '' } },
        h('td', { class: 'rule' }, r.name),
        h('td', { class: 'origin', title: r.origin === 'api' ? 'made through the API, kept in the store' : 'from the configuration file' }, r.origin || ''),
        h('td', {}, scopeText(r.scope)),
        h('td', { class: 'key' }, r.dim ? r.dim + ' ' + (r.key === '*' ? '* (any key)' : r.key) : 'total'),
        h('td', {}, r.metric === 'flows' ? 'flows/s' : r.metric || 'bps'),
        h('td', { class: 'cond' }, condition(r), r.early_warning ? h('span', { class: 'marker', title: 'fires on the open minute\u2019s rate so far' }, 'early') : null),
        h('td', { title: `resolves after ${duration(r.resolve_for || '5m')} below` + (r.repeat ? `, repeats every ${duration(r.repeat)}` : '') }, duration(r.for)),
        h('td', { class: 'sev sev-' + r.severity }, r.severity || ''),
        h('td', {}, (r.targets || []).join(', ') || '—'),
        h('td', {}, r.origin === 'api'
          ? armedButton('Delete', 'Delete? again', 'delete', () => write('DELETE', 'alerts/rules/' + api.seg(r.name)))
          : null))))));
  }

  function renderSilences(list) {
    if (!list.length) {
      silBody.replaceChildren(h('p', { class: 'nodata' }, 'No silence in force.'));
      return;
    }
    silBody.replaceChildren(h('table', { class: 'alert-silences' },
      h('thead', {}, h('tr', {}, ['id', 'rule', 'key', 'until', 'comment', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, list.map((s) => h('tr', { dataset: { id: s.id, rule: s.rule, key: s.key || '' } },
        h('td', {}, s.id), h('td', { class: 'rule' }, s.rule), h('td', { class: 'key' }, s.key || 'all keys'),
        timeCell(s.until), h('td', { class: 'comment' }, s.comment || ''),
        h('td', {}, h('button', { type: 'button', class: 'unsilence', onclick: async (e) => {
          const b = e.currentTarget;
          b.disabled = true;
          if (!await write('DELETE', 'alerts/silences/' + api.seg(s.id))) b.disabled = false;
        } }, 'Unsilence')))))));
  }

  function renderHistory(ans, rules) {
    const events = [...(ans.events || [])].reverse(); // the API's oldest first
    const parts = [];
    if (ans.truncated) parts.push(h('p', { class: 'muted note' }, `The ${HISTORY_N} most recent events of the range: narrow it for the older ones.`));
    if (!events.length) {
      parts.push(h('p', { class: 'nodata' }, state ? `No ${state} event in this range.` : 'No event in this range.'));
    } else {
      const cols = ['at', 'kind', 'rule', 'key', 'value', 'threshold', 'summary'];
      parts.push(h('table', { class: 'alert-history' },
        h('thead', {}, h('tr', {}, cols.map((c, i) => h('th', { class: i === 4 || i === 5 ? 'num' : '' }, c)))),
        h('tbody', {}, events.map((ev) => {
          const r = rules.get(ev.rule);
          const op = r && !r.baseline ? r.op || '>' : '>';
          return h('tr', { dataset: { kind: ev.kind, rule: ev.rule, key: ev.key || '' } },
            timeCell(ev.at),
            h('td', { class: 'kind kind-' + ev.kind }, ev.kind),
            h('td', { class: 'rule' }, ev.rule),
            h('td', { class: 'key' }, h('a', { href: keyHref(ev), title: (ev.dim ? ev.dim + ' ' : '') + (ev.key || 'total') }, keyText(ev))),
            h('td', { class: 'num' }, valueText(ev)),
            h('td', { class: 'num' }, op + ' ' + rateText(ev.metric, ev.threshold)),
            h('td', { class: 'summary' }, ev.summary || (ev.error ? 'error: ' + ev.error : '')));
        }))));
    }
    histBody.replaceChildren(...parts);
  }

  // load asks the four answers at once; each section shows its own failure.
  // Only the latest load renders: a write's reload may overtake a refresh.
  let seq = 0;
  async function load() {
    const my = ++seq;
    const [active, rules, silences, history] = await Promise.allSettled([
      api.get('alerts/active', {}, ctx.signal),
      api.get('alerts/rules', {}, ctx.signal),
      api.get('alerts/silences', {}, ctx.signal),
      api.get('alerts', { from, to, state, n: HISTORY_N }, ctx.signal),
    ]);
    if (my !== seq || ctx.signal.aborted) return;
    const byName = new Map(rules.status === 'fulfilled' ? (rules.value.rules || []).map((r) => [r.name, r]) : []);
    const shown = new Set();
    const fail = (el, e) => {
      panelError(el, e);
      // One banner line per distinct error: four 404s of an older tmsd are one.
      if (!shown.has(e && e.message)) showError(e);
      shown.add(e && e.message);
    };
    if (rules.status === 'fulfilled') renderRules(rules.value.rules || []); else fail(rulesBody, rules.reason);
    if (active.status === 'fulfilled') renderActive(active.value, byName); else fail(activeBody, active.reason);
    if (silences.status === 'fulfilled') renderSilences(silences.value.silences || []); else fail(silBody, silences.reason);
    if (history.status === 'fulfilled') renderHistory(history.value, byName); else fail(histBody, history.reason);
  }

  // The sections "now" are live whatever the history's range.
  ctx.refreshing(true, REFRESH_MS, load);
}
