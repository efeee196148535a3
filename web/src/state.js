// View state lives in the URL hash (#/top?by=app&n=10&from=-1h), so any view
// can be bookmarked and shared; times stay as the user wrote them (-1h, now,
// RFC 3339) and are resolved here only to size charts and steps.

const UNIT_MS = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };

// parseDuration accepts what the API accepts: 90s, 15m, 1h30m, 7d.
export function parseDuration(s) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let ms = 0;
  let m;
  re.lastIndex = 0;
  while (re.lastIndex < s.length && (m = re.exec(s))) ms += parseFloat(m[1]) * UNIT_MS[m[2]];
  if (!s || re.lastIndex !== s.length || !m) return NaN;
  return ms;
}

// resolveTime turns an API time parameter into a Date (null when unreadable).
export function resolveTime(s, now = new Date()) {
  if (!s || s === 'now') return now;
  if (s.startsWith('-')) {
    const d = parseDuration(s.slice(1));
    return Number.isNaN(d) ? null : new Date(now.getTime() - d);
  }
  if (/^\d+$/.test(s)) return new Date(Number(s) * 1000);
  const t = new Date(s);
  return Number.isNaN(t.getTime()) ? null : t;
}

// isLive: the range ends now, so new minutes keep arriving.
export const isLive = (to) => !to || to === 'now' || to.startsWith('-');

// rfc3339 is an absolute API time without the milliseconds.
export const rfc3339 = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

const STEPS_MIN = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];

// chooseStep keeps a chart to at most maxPoints points: one per minute for
// an hour, hourly for a week.
export function chooseStep(rangeMs, maxPoints = 240) {
  for (const m of STEPS_MIN) {
    if (rangeMs / (m * 60e3) <= maxPoints) return m * 60;
  }
  return STEPS_MIN[STEPS_MIN.length - 1] * 60;
}

// compareStep is chooseStep's step for a comparison: it must also divide how
// far back the comparison looks (the API aligns the earlier points to the
// current ones step by step). A range with no such step within maxPoints
// gets the coarsest step that divides the offset.
export function compareStep(rangeMs, offMs, maxPoints = 240) {
  const fits = STEPS_MIN.filter((m) => offMs % (m * 60e3) === 0);
  const m = fits.find((x) => rangeMs / (x * 60e3) <= maxPoints) ?? fits[fits.length - 1] ?? 1;
  return m * 60;
}

// route is the current view: its path and parameters.
export function route() {
  const h = location.hash.replace(/^#/, '') || '/';
  const i = h.indexOf('?');
  return {
    path: i < 0 ? h : h.slice(0, i),
    params: new URLSearchParams(i < 0 ? '' : h.slice(i + 1)),
  };
}

// href builds a view's URL, leaving out empty parameters.
export function href(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return '#' + path + (s ? '?' + s : '');
}

export function go(path, params) {
  location.hash = href(path, params);
}

// compareOffset is how far back a comparison looks, as the API reads
// compare=: "prev" is the period just before, else 1d, 7d or 28d.
export function compareOffset(compare, from, to) {
  if (!compare) return 0;
  if (compare === 'prev') return to - from;
  const d = parseDuration(compare);
  return Number.isNaN(d) ? 0 : d;
}
