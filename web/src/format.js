// Human units and times. Rates are SI (1 Gbps = 1e9 bit/s, as links are sold);
// volumes are IEC (1 GiB = 2^30 bytes, as disks and RAM are counted).

const SI = ['', 'k', 'M', 'G', 'T', 'P'];
const IEC = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

// scaled renders v with 3 significant digits and the prefix of its magnitude.
function scaled(v, base, units) {
  if (v == null || !Number.isFinite(v)) return '—';
  let i = 0;
  let x = Math.abs(v);
  while (x >= base && i < units.length - 1) {
    x /= base;
    i++;
  }
  const digits = x >= 100 || i === 0 && Number.isInteger(x) ? 0 : x >= 10 ? 1 : 2;
  return (v < 0 ? '-' : '') + x.toFixed(digits) + (units[i] ? '\u202f' + units[i] : '');
}

export const bps = (v) => scaled(v, 1000, SI.map((p) => p + 'bps'));
export const pps = (v) => scaled(v, 1000, SI.map((p) => p + 'pps'));
export const fps = (v) => scaled(v, 1000, SI.map((p) => p + 'flows/s'));
export const bytes = (v) => scaled(v, 1024, IEC);
export const count = (v) => scaled(v, 1000, SI);
export const percent = (v) => (v == null || !Number.isFinite(v) ? '—' : (v * 100).toFixed(v >= 0.1 ? 1 : 2) + '\u202f%');

// rate formats a per-second value of a metric (bytes are shown as bits).
export function rate(metric, v) {
  switch (metric) {
    case 'packets': return pps(v);
    case 'flows': return fps(v);
    default: return bps(v);
  }
}

// total formats an amount of a metric over a range.
export function amount(metric, v) {
  return metric === 'bytes' ? bytes(v) : count(v) + (metric === 'packets' ? ' packets' : ' flows');
}

// delta renders a relative change, "+12 %", with the sign that matters.
export function delta(now, before) {
  if (!before) return now ? 'new' : '—';
  const d = (now - before) / before;
  return (d >= 0 ? '+' : '') + (d * 100).toFixed(Math.abs(d) >= 0.1 ? 0 : 1) + '\u202f%';
}

const pad = (n) => String(n).padStart(2, '0');

// localTime is the browser's zone; utcTime goes in the title (hover).
export function localTime(d, withSeconds = false) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}` +
    (withSeconds ? ':' + pad(d.getSeconds()) : '');
}

export function utcTime(d) {
  return d.toISOString().replace('.000Z', 'Z').replace('T', ' ').replace('Z', ' UTC');
}

// ago is a short relative age: "12 s ago", "3 min ago", "2 h ago".
export function ago(d, now = new Date()) {
  const s = Math.round((now - d) / 1000);
  if (s < 0) return 'in the future';
  if (s < 90) return `${s}\u202fs ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)}\u202fmin ago`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)}\u202fh ago`;
  return `${Math.round(s / 86400)}\u202fdays ago`;
}

// timeCell sets a cell or span to local time with UTC on hover.
export function timeText(el, d, withSeconds) {
  el.textContent = localTime(d, withSeconds);
  el.title = utcTime(d);
  return el;
}

// localRange is a range in the browser's zone, the end's date left out
// when it is the start's: "2026-11-22 19:47 – 19:51".
export function localRange(a, b) {
  const from = localTime(a);
  const to = localTime(b);
  return from + ' – ' + (to.slice(0, 10) === from.slice(0, 10) ? to.slice(11) : to);
}
