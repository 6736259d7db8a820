// Formatting and small DOM helpers shared by the views.

/** Creates an element: `h('p', { class: 'x' }, 'text', child)`. */
export function h(tag, attrs = {}, ...children) {
  const svg = SVG_TAGS.has(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG_TAGS = new Set(['svg', 'g', 'path', 'rect', 'line', 'text', 'title', 'desc', 'polyline', 'circle']);

const DAY = 86400;

/** Seconds as a short duration: `3.2 d`, `5 h`, `12 min`. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds >= DAY) return `${(seconds / DAY).toFixed(seconds >= 10 * DAY ? 0 : 1)} d`;
  if (seconds >= 3600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.round(seconds / 60)} min`;
}

/** A share 0..1 as a percentage. */
export function percent(share) {
  if (share === null || share === undefined) return '–';
  return `${Math.round(share * 100)} %`;
}

export function number(n, digits = 0) {
  if (n === null || n === undefined) return '–';
  return Number(n).toFixed(digits);
}

/** An RFC 3339 instant as a date, `4 Dec 2026`. */
export function date(iso) {
  if (!iso) return '–';
  return new Date(iso).toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
}

/** The window of the last `days` days up to now, as `TimeWindowInput`. */
export function lastDays(days) {
  const to = new Date();
  const from = new Date(to.getTime() - days * DAY * 1000);
  return { from: from.toISOString(), to: to.toISOString() };
}

/**
 * Seconds between two refreshes of the panels no live subscription feeds:
 * 30, or `?refresh=<seconds>` in the page's address (at least 1; the
 * browser tests use it to see a refresh without waiting).
 */
export function refreshSeconds() {
  const asked = Number(new URLSearchParams(window.location.search).get('refresh'));
  return Number.isFinite(asked) && asked >= 1 ? asked : 30;
}

/**
 * Calls `load` every `refreshSeconds()` while the page is visible, never
 * twice at once; a page shown again after missing a turn refreshes at
 * once. Returns the function that stops it.
 */
export function everyWhileVisible(load) {
  const ms = refreshSeconds() * 1000;
  let last = Date.now();
  let running = false;
  const tick = async () => {
    if (running || document.visibilityState !== 'visible' || Date.now() - last < ms / 2) return;
    running = true;
    last = Date.now();
    try {
      await load();
    } finally {
      running = false;
    }
  };
  const timer = window.setInterval(tick, ms);
  const shown = () => {
    if (Date.now() - last >= ms) tick();
  };
  document.addEventListener('visibilitychange', shown);
  return () => {
    window.clearInterval(timer);
    document.removeEventListener('visibilitychange', shown);
  };
}

/** Human words for enum values: `TEAM_MEMBER` → `team member`. */
export function words(value) {
  return String(value || '').toLowerCase().replaceAll('_', ' ');
}

/** The path from the organisation down to `unit`, each ancestor a link to the same view. */
export function crumbs(unit, view) {
  return h('nav', { 'aria-label': 'Breadcrumb', class: 'crumbs' },
    h('ol', {},
      (unit.ancestors || []).map((a) => h('li', {}, h('a', { href: `#/${view}/${a.key}` }, a.name))),
      h('li', { 'aria-current': 'page' }, unit.name)));
}
