// Time charts on uPlot: lines, stacked areas (drawn from running sums, the
// legend showing each layer's own value) and dashed comparison overlays.
// Axes are in the browser's zone; the legend shows the hovered time in UTC too.
import uPlot from 'uplot';
import { localTime } from './format.js';

export const PALETTE = ['#4e9af1', '#f4a53c', '#4cc38a', '#e5636a', '#b48cf2', '#3cc8c8', '#e6d35a', '#f27fb8',
  '#8fbf4d', '#d98e5a', '#7c8cf8', '#5ad1a0', '#c9a0dc', '#ff9e80', '#80cbc4', '#bcaaa4'];
export const OTHER_COLOR = '#7d8590';
const AXIS = '#9aa4b2';
const GRID = 'rgba(154,164,178,0.12)';

const X_INCRS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400];

const pad = (n) => String(n).padStart(2, '0');

function hoverTime(ts) {
  if (ts == null) return '—';
  const d = new Date(ts * 1000);
  return `${localTime(d)} (${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC)`;
}

// rem is the root font size: it grows on a wall display, and the charts'
// heights and canvas fonts (which CSS does not reach) follow it.
const rem = () => parseFloat(getComputedStyle(document.documentElement).fontSize) || 14;

function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
}

// TimeChart draws into el; setData may be called again (live refresh) and
// keeps the chart when the series are the same.
export class TimeChart {
  // opts: {height, fmt (y values), stacked, onZoom(fromDate, toDate)}
  constructor(el, opts) {
    this.el = el;
    this.opts = opts;
    this.u = null;
    this.sig = '';
    el.classList.add('chart');
    this.ro = new ResizeObserver(() => {
      if (this.u && el.clientWidth > 0) this.u.setSize({ width: el.clientWidth, height: this.height() });
    });
    this.ro.observe(el);
  }

  height() {
    return Math.round(((this.opts.height || 220) * rem()) / 14);
  }

  // series: [{label, color, values, dash, other}], xs: unix seconds.
  setData(xs, series) {
    const { stacked, fmt } = this.opts;
    const layers = series.filter((s) => !s.dash);
    const raw = series.map((s) => s.values);
    let data = series.map((s) => s.values);
    if (stacked) {
      const sums = new Array(xs.length).fill(0);
      data = series.map((s) => {
        if (s.dash) return s.values;
        return s.values.map((v, i) => (sums[i] += v || 0));
      });
    }
    const sig = JSON.stringify([stacked, series.map((s) => [s.label, s.color, !!s.dash])]);
    if (this.u && sig === this.sig) {
      this.raw = raw;
      this.u.setData([xs, ...data]);
    } else {
      this.sig = sig;
      this.raw = raw;
      this.build(xs, series, data, layers.length);
    }
    // What is drawn, as given (not stacked): the tests compare it with the API.
    this.el.chartData = { xs, series };
    const empty = !xs.length || series.every((s) => s.values.every((v) => !v));
    this.el.classList.toggle('chart-empty', empty);
  }

  build(xs, series, data, nLayers) {
    if (this.u) this.u.destroy();
    this.el.replaceChildren(); // an error shown before the first answer
    const { stacked, fmt, onZoom } = this.opts;
    const fmtY = (v) => (v == null ? '—' : fmt(v));
    const r = rem();
    const font = `${Math.round(r * 0.78)}px system-ui, sans-serif`;
    const opts = {
      width: Math.max(this.el.clientWidth, 300),
      height: this.height(),
      cursor: { drag: { x: !!onZoom, y: false }, points: { size: 6 } },
      select: { show: !!onZoom },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] } },
      axes: [
        // Data is per minute at best: no ticks between minutes.
        { stroke: AXIS, grid: { stroke: GRID }, ticks: { stroke: GRID }, space: 5 * r, incrs: X_INCRS, font, size: 3.4 * r },
        { stroke: AXIS, grid: { stroke: GRID }, ticks: { stroke: GRID }, size: 6 * r, font, values: (u, splits) => splits.map(fmtY) },
      ],
      legend: { live: true },
      series: [
        { value: (u, ts) => hoverTime(ts) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color,
          width: s.dash ? 1.5 : stacked ? 1 : 2,
          dash: s.dash ? [6, 4] : undefined,
          fill: s.dash ? undefined : alpha(s.color, stacked ? 0.55 : 0.12),
          points: { show: xs.length <= 2 },
          // The legend shows a layer's own value, not the running sum.
          value: (u, v, si, idx) => (idx == null ? '—' : fmtY(this.raw[si - 1][idx])),
        })),
      ],
      hooks: {},
    };
    if (stacked && nLayers > 1) {
      opts.bands = [];
      for (let i = 1; i < nLayers; i++) opts.bands.push({ series: [i + 1, i] });
    }
    if (onZoom) {
      opts.hooks.setSelect = [(u) => {
        if (u.select.width < 5) return;
        const a = u.posToVal(u.select.left, 'x');
        const b = u.posToVal(u.select.left + u.select.width, 'x');
        onZoom(new Date(a * 1000), new Date(b * 1000));
      }];
    }
    this.u = new uPlot(opts, [xs, ...data], this.el);
  }

  destroy() {
    this.ro.disconnect();
    if (this.u) this.u.destroy();
    this.u = null;
  }
}
