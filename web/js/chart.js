// A small line chart drawn as SVG: a few series over time, a y scale from 0 to a rounded
// maximum, the latest value of each series in the legend. No dependencies, no build step.

const NS = 'http://www.w3.org/2000/svg';
const WIDTH = 320;
const HEIGHT = 120;
const PAD = { left: 6, right: 6, top: 10, bottom: 6 };

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

/** The smallest of 1, 2, 5 × 10^n at or above `v` (so the scale reads in round numbers). */
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const exp = Math.floor(Math.log10(v));
  const base = 10 ** exp;
  for (const m of [1, 2, 5, 10]) {
    if (v <= m * base) return m * base;
  }
  return 10 * base;
}

/** Polyline points of `values` (oldest first) scaled into the plot area, newest at the right. */
export function linePoints(values, max, capacity) {
  const w = WIDTH - PAD.left - PAD.right;
  const hgt = HEIGHT - PAD.top - PAD.bottom;
  const step = capacity > 1 ? w / (capacity - 1) : 0;
  const offset = capacity - values.length;
  return values.map((v, i) => {
    const x = PAD.left + (offset + i) * step;
    const y = PAD.top + hgt - (Math.max(0, v) / max) * hgt;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(' ');
}

/**
 * A chart. `series`: [{key, label, format?}] (at most 4; colours come from the CSS classes
 * `chart-s0`…`chart-s3`). `capacity`: how many samples are shown. Returns {el, push(values),
 * reset(rows)} where `values` maps series keys to numbers.
 */
export function lineChart({ title, series, capacity = 60, format = (v) => String(Math.round(v)), testid }) {
  const root = document.createElement('figure');
  root.className = 'chart';
  if (testid) root.dataset.testid = testid;
  const caption = document.createElement('figcaption');
  caption.className = 'chart-title';
  caption.textContent = title;
  const plot = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', class: 'chart-plot', role: 'img', 'aria-label': title });
  const grid = svg('g', { class: 'chart-grid' });
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + (HEIGHT - PAD.top - PAD.bottom) * f;
    grid.append(svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }));
  }
  plot.append(grid);
  const lines = series.map((s, i) => {
    const line = svg('polyline', { class: `chart-line chart-s${i}`, fill: 'none', 'data-series': s.key, points: '' });
    plot.append(line);
    return line;
  });
  const scale = document.createElement('span');
  scale.className = 'chart-scale';
  const legend = document.createElement('ul');
  legend.className = 'chart-legend';
  const values = series.map((s, i) => {
    const li = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = `chart-swatch chart-s${i}`;
    const label = document.createElement('span');
    label.textContent = s.label;
    const value = document.createElement('strong');
    value.className = 'chart-value';
    value.dataset.series = s.key;
    value.textContent = '—';
    li.append(swatch, label, value);
    legend.append(li);
    return value;
  });
  const head = document.createElement('div');
  head.className = 'chart-head';
  head.append(caption, scale);
  root.append(head, plot, legend);

  const data = series.map(() => []);
  let samples = 0;

  function draw() {
    const max = niceMax(Math.max(0, ...data.flat()));
    scale.textContent = `max ${format(max)}`;
    data.forEach((vals, i) => {
      lines[i].setAttribute('points', linePoints(vals, max, capacity));
      const last = vals.length ? vals[vals.length - 1] : null;
      values[i].textContent = last === null ? '—' : (series[i].format || format)(last);
      values[i].dataset.value = last === null ? '' : String(last);
    });
    root.dataset.samples = String(samples);
  }

  function add(row) {
    series.forEach((s, i) => {
      const v = Number(row[s.key]);
      data[i].push(Number.isFinite(v) ? v : 0);
      if (data[i].length > capacity) data[i].shift();
    });
    samples += 1;
  }

  draw();
  return {
    el: root,
    push(row) { add(row); draw(); },
    reset(rows) {
      data.forEach((d) => { d.length = 0; });
      samples = 0;
      for (const r of rows) add(r);
      draw();
    },
  };
}
