// Ledger console: time series kept in bounded memory, drawn as SVG line charts (no library).
import { LIMITS } from './core.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Points `[time ms, value]` of the last `LIMITS.chartWindowMs`, at most `LIMITS.chartPoints`. */
export class Series {
  constructor(name, cls) {
    this.name = name;
    this.cls = cls;
    this.points = [];
  }

  push(t, v) {
    this.points.push([t, Number(v)]);
    const oldest = t - LIMITS.chartWindowMs;
    while (this.points.length && (this.points[0][0] < oldest || this.points.length > LIMITS.chartPoints)) {
      this.points.shift();
    }
  }

  last() {
    return this.points.length ? this.points[this.points.length - 1][1] : undefined;
  }
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function label(v, unit) {
  const s = v >= 1000 ? v.toLocaleString('en-US', { maximumFractionDigits: 0 }) : String(+v.toPrecision(3));
  return unit ? `${s} ${unit}` : s;
}

/** An SVG chart of `series` over the last window, ending now. */
export function lineChart(series, { title, unit, now, width = 640, height = 180 }) {
  const pad = { l: 64, r: 12, t: 22, b: 22 };
  const w = width - pad.l - pad.r;
  const hgt = height - pad.t - pad.b;
  const end = now;
  const start = end - LIMITS.chartWindowMs;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite)));
  const x = (t) => pad.l + ((t - start) / (end - start)) * w;
  const y = (v) => pad.t + hgt - (v / max) * hgt;
  const root = svg('svg', {
    class: 'chart',
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `${title}: ${series.map((s) => `${s.name} ${label(s.last() ?? 0, unit)}`).join(', ')}`,
  });
  root.append(svg('text', { x: pad.l, y: 14, class: 'chart-title' }, title));
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    root.append(svg('line', { x1: pad.l, x2: pad.l + w, y1: y(v), y2: y(v), class: 'chart-grid' }));
    root.append(svg('text', { x: pad.l - 6, y: y(v) + 4, class: 'chart-axis', 'text-anchor': 'end' }, label(v, unit)));
  }
  root.append(svg('text', { x: pad.l, y: height - 6, class: 'chart-axis' }, `−${LIMITS.chartWindowMs / 60000} min`));
  root.append(svg('text', { x: pad.l + w, y: height - 6, class: 'chart-axis', 'text-anchor': 'end' }, 'now'));
  let lx = pad.l + w;
  for (const s of [...series].reverse()) {
    const pts = s.points.filter((p) => p[0] >= start && Number.isFinite(p[1]));
    if (pts.length) {
      root.append(svg('polyline', { class: `chart-line ${s.cls}`, points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ') }));
    }
    const text = `${s.name}: ${label(s.last() ?? 0, unit)}`;
    lx -= text.length * 7 + 12;
    root.append(svg('text', { x: lx, y: 14, class: `chart-legend ${s.cls}` }, text));
  }
  return root;
}
