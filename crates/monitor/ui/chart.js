// A small live line chart in SVG: a few series over the last few minutes, y from zero to a
// rounded maximum, x in minutes before now. Points: [{t: ms since epoch, v: [number|null, ...]}].

import { s, put } from './app.js';

const HEIGHT = 150;
const LEFT = 46;
const RIGHT = 10;
const TOP = 10;
const BOTTOM = 22;

/** A tick label: 2.5k, 10k, 1.2M, 0.25, 12 (no trailing zeros). */
export function tick(v) {
  const trim = (x) => String(Number(x.toPrecision(3)));
  if (v >= 1e6) return `${trim(v / 1e6)}M`;
  if (v >= 1e3) return `${trim(v / 1e3)}k`;
  return trim(v);
}

/** The smallest "nice" number (1, 2, 2.5, 5 × 10^k) at or above `x`. */
export function niceCeil(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

export class LineChart {
  /**
   * `spanMs`: how far back the x axis goes at most (it starts at the first point, showing at
   * least a minute); `format(v)`: y tick labels.
   */
  constructor(svg, { series, spanMs = 5 * 60 * 1000, format = tick }) {
    this.svg = svg;
    this.series = series;
    this.spanMs = spanMs;
    this.format = format;
  }

  /** Redraws with `points` (oldest first); `now` is the right edge. */
  draw(points, now = Date.now()) {
    const width = Math.max(240, Math.round(this.svg.parentElement?.clientWidth || 480));
    this.svg.setAttribute('viewBox', `0 0 ${width} ${HEIGHT}`);
    const plotW = width - LEFT - RIGHT;
    const plotH = HEIGHT - TOP - BOTTOM;
    const first = points.length ? points[0].t : now;
    const span = Math.min(this.spanMs, Math.max(30000, now - first));
    const from = now - span;
    const visible = points.filter((p) => p.t >= from);
    let max = 0;
    for (const p of visible) for (const v of p.v) if (v !== null && Number.isFinite(v)) max = Math.max(max, v);
    const top = 4 * niceCeil((max * 1.1) / 4);
    const x = (t) => LEFT + ((t - from) / span) * plotW;
    const y = (v) => TOP + plotH - (v / top) * plotH;

    const parts = [];
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      parts.push(s('line', { class: i ? 'gridline' : 'axis', x1: LEFT, x2: LEFT + plotW, y1: y(v), y2: y(v) }));
      parts.push(s('text', { class: 'tick', x: LEFT - 5, y: y(v) + 3.5, 'text-anchor': 'end' }, this.format(v)));
    }
    const step = [5000, 10000, 15000, 30000, 60000, 120000].find((st) => span / st <= 6) ?? 300000;
    for (let back = 0; back <= span; back += step) {
      const t = now - back;
      const label = back === 0 ? 'now' : back % 60000 ? `-${back / 1000}s` : `-${back / 60000}m`;
      const anchor = back === 0 ? 'end' : back + step > span ? 'start' : 'middle';
      parts.push(s('text', { class: 'tick', x: x(t), y: HEIGHT - 6, 'text-anchor': anchor }, label));
      if (back) parts.push(s('line', { class: 'gridline', x1: x(t), x2: x(t), y1: TOP, y2: TOP + plotH }));
    }
    parts.push(s('line', { class: 'axis', x1: LEFT, x2: LEFT, y1: TOP, y2: TOP + plotH }));

    let drawn = 0;
    this.series.forEach((serie, k) => {
      // Runs of consecutive values; a run of one point is drawn as a dot.
      const runs = [[]];
      for (const p of visible) {
        const v = p.v[k];
        if (v === null || !Number.isFinite(v)) { if (runs[runs.length - 1].length) runs.push([]); continue; }
        runs[runs.length - 1].push([x(p.t).toFixed(1), y(v).toFixed(1)]);
      }
      const d = runs.filter((r) => r.length > 1)
        .map((r) => r.map(([px, py], i) => `${i ? 'L' : 'M'} ${px} ${py}`).join(' ')).join(' ');
      if (d) {
        parts.push(s('path', { class: `series ${serie.cls}`, d, dataset: { series: serie.name } },
          s('title', null, serie.name)));
      }
      for (const [[px, py]] of runs.filter((r) => r.length === 1)) {
        parts.push(s('circle', { class: `dot ${serie.cls}`, cx: px, cy: py, r: 2.5 }));
      }
      if (runs.some((r) => r.length)) drawn++;
    });
    if (!drawn) {
      parts.push(s('text', { class: 'nodata', x: LEFT + plotW / 2, y: TOP + plotH / 2, 'text-anchor': 'middle' },
        'collecting samples…'));
    }
    put(this.svg, parts);
    // For tests and curious users: how much is drawn.
    this.svg.dataset.points = String(visible.length);
    this.svg.dataset.max = String(max);
  }
}
