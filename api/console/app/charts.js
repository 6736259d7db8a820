// Hand-written SVG charts: throughput per week (bars) and the cumulative
// flow diagram (stacked areas). Each is an image with a text alternative
// that states what it shows.

import { h } from './format.js';

const W = 560;
const H = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 36 };
/** Distinct colours with at least 3:1 contrast against white, by state category order. */
const PALETTE = ['#5b6b7f', '#1f6fb2', '#b35c00', '#7a4fb5', '#0f7b5f', '#a3324a', '#3f6e1f', '#8a6d00', '#2f5d8a', '#6b4226'];

function frame(label, children) {
  return h('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, class: 'chart', preserveAspectRatio: 'xMidYMid meet' },
    h('title', {}, label), children);
}

function axisY(max) {
  const ticks = [0, Math.round(max / 2), max];
  const innerH = H - PAD.top - PAD.bottom;
  return ticks.map((t) => {
    const y = PAD.top + innerH - (max ? (t / max) * innerH : 0);
    return h('g', { class: 'tick' },
      h('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y }),
      h('text', { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end' }, t));
  });
}

/** Bars of `weeks` (`{ week, count }`, oldest first). */
export function throughputChart(weeks, name) {
  const label = weeks.length
    ? `Throughput per week for ${name}: ${weeks.map((w) => `${w.week} ${w.count}`).join(', ')}`
    : `Throughput per week for ${name}: nothing completed in the window`;
  const max = Math.max(1, ...weeks.map((w) => w.count));
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const step = innerW / Math.max(1, weeks.length);
  const bars = weeks.map((w, i) => {
    const bh = (w.count / max) * innerH;
    const x = PAD.left + i * step + step * 0.15;
    return h('g', {},
      h('rect', { x, y: PAD.top + innerH - bh, width: step * 0.7, height: bh, class: 'bar' }),
      weeks.length <= 14 || i % 2 === 0
        ? h('text', { x: x + step * 0.35, y: H - 10, 'text-anchor': 'middle', class: 'label' }, w.week.slice(5))
        : null);
  });
  return frame(label, [axisY(max), bars]);
}

/** Stacked areas of `days` (`{ date, counts: [{ state, count }] }`), done states at the bottom. */
export function cumulativeFlowChart(days, name) {
  if (!days.length) return frame(`Cumulative flow for ${name}: no data`, []);
  // Workflow order puts NEW first and DONE last; a CFD stacks done at the bottom.
  const states = days[0].counts.map((c) => c.state).reverse();
  const totals = days.map((d) => d.counts.reduce((s, c) => s + c.count, 0));
  const max = Math.max(1, ...totals);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (days.length === 1 ? innerW : (i / (days.length - 1)) * innerW);
  const y = (v) => PAD.top + innerH - (v / max) * innerH;
  const below = days.map(() => 0);
  const areas = [];
  states.forEach((state, si) => {
    const lower = below.slice();
    days.forEach((d, i) => {
      const c = d.counts.find((k) => k.state === state);
      below[i] += c ? c.count : 0;
    });
    const top = days.map((_, i) => `${x(i).toFixed(1)},${y(below[i]).toFixed(1)}`);
    const bottom = days.map((_, i) => `${x(i).toFixed(1)},${y(lower[i]).toFixed(1)}`).reverse();
    areas.push(h('path', { d: `M${top.join('L')}L${bottom.join('L')}Z`, fill: PALETTE[si % PALETTE.length], class: 'area' },
      h('title', {}, state)));
  });
  const last = days[days.length - 1];
  const label = `Cumulative flow for ${name}, ${days[0].date} to ${last.date}; on the last day ${last.counts.map((c) => `${c.state} ${c.count}`).join(', ')}`;
  const legend = h('ul', { class: 'legend', 'aria-hidden': 'true' },
    states.map((s, i) => h('li', {}, h('span', { class: `swatch swatch-${i % PALETTE.length}` }), s)).reverse());
  return h('div', { class: 'cfd' }, frame(label, [axisY(max), areas]), legend);
}

/**
 * Aging WIP: the oldest items in progress as bars of their age, against
 * the cycle-time p50 and p85 of the items completed in the window; a bar
 * past p85 is older than 85 % of finished work took.
 */
export function agingChart(items, cycle, name) {
  if (!items.length) return h('p', { class: 'note' }, 'Nothing in progress.');
  const DAY = 86400;
  const rowH = 22;
  const left = 150;
  const height = PAD.top + items.length * rowH + 32;
  const max = Math.max(...items.map((i) => i.age), cycle.p85 || 0, 1);
  const x = (s) => left + (s / max) * (W - left - PAD.right);
  const days = (s) => `${(s / DAY).toFixed(1)} d`;
  const label = `Aging work in progress for ${name}: ${items.map((i) => `${i.workItem.key} ${days(i.age)}`).join(', ')}; cycle time p50 ${cycle.p50 ? days(cycle.p50) : 'unknown'}, p85 ${cycle.p85 ? days(cycle.p85) : 'unknown'}`;
  const rows = items.map((i, n) => {
    const y = PAD.top + n * rowH;
    const late = cycle.p85 && i.age > cycle.p85;
    return h('g', {},
      h('text', { x: left - 6, y: y + 14, 'text-anchor': 'end' }, i.workItem.key),
      h('rect', { x: left, y: y + 3, width: Math.max(1, x(i.age) - left), height: rowH - 8, class: late ? 'bar late' : 'bar' },
        h('title', {}, `${i.workItem.key} ${i.workItem.title}: ${days(i.age)} in progress (${i.workItem.state})`)));
  });
  // The two labels sit on two rows, so close percentiles stay readable.
  const line = (v, text, row) => (v ? h('g', { class: 'pline' },
    h('line', { x1: x(v), x2: x(v), y1: PAD.top - 4, y2: height - 28 + row * 12 }),
    h('text', { x: x(v), y: height - 16 + row * 12, 'text-anchor': 'middle' }, `${text} ${days(v)}`)) : null);
  return h('svg', { viewBox: `0 0 ${W} ${height}`, role: 'img', 'aria-label': label, class: 'chart' },
    h('title', {}, label), rows, line(cycle.p50, 'p50', 0), line(cycle.p85, 'p85', 1));
}

/**
 * Cycle-time scatterplot: one dot per item completed in the window (x its
 * completion, y its cycle time in days), with the p50 and p85 lines.
 */
export function cycleScatter(points, cycle, window, name) {
  const DAY = 86400;
  const from = Date.parse(window.from);
  const to = Date.parse(window.to);
  const maxY = Math.max(1, ...points.map((p) => p.cycle / DAY), (cycle.p85 || 0) / DAY);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - from) / (to - from)) * innerW;
  const y = (d) => PAD.top + innerH - (d / maxY) * innerH;
  const days = (s) => `${(s / DAY).toFixed(1)} d`;
  const label = `Cycle time of ${points.length} items of ${name} completed in the window; p50 ${cycle.p50 ? days(cycle.p50) : 'unknown'}, p85 ${cycle.p85 ? days(cycle.p85) : 'unknown'}`;
  const ticks = [0, Math.round(maxY / 2), Math.round(maxY)].map((t) => h('g', { class: 'tick' },
    h('line', { x1: PAD.left, x2: W - PAD.right, y1: y(t), y2: y(t) }),
    h('text', { x: PAD.left - 6, y: y(t) + 4, 'text-anchor': 'end' }, `${t} d`)));
  const dots = points.map((p) => h('circle', { cx: x(p.done).toFixed(1), cy: y(p.cycle / DAY).toFixed(1), r: 4, class: cycle.p85 && p.cycle > cycle.p85 ? 'dot late' : 'dot' },
    h('title', {}, `${p.key} ${p.title}: ${days(p.cycle)}, done ${new Date(p.done).toISOString().slice(0, 10)}`)));
  const line = (v, text) => (v ? h('g', { class: 'pline' },
    h('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v / DAY), y2: y(v / DAY) }),
    h('text', { x: W - PAD.right, y: y(v / DAY) - 4, 'text-anchor': 'end' }, `${text} ${days(v)}`)) : null);
  return frame(label, [ticks, dots, line(cycle.p50, 'p50'), line(cycle.p85, 'p85')]);
}

/** A horizontal progress bar 0..1 with its text. */
export function progressBar(share, label) {
  const value = share === null || share === undefined ? 0 : Math.round(share * 100);
  const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': value, 'aria-label': label });
  const fill = h('div', { class: 'progress-fill' });
  fill.style.width = `${value}%`;
  bar.append(fill);
  return bar;
}
