// The overview of a unit for executives (and anyone reading aggregates):
// its children side by side with flow and DORA metrics and objectives,
// the unit's throughput per week and cumulative flow. Clicking a child
// drills down to it. The flow numbers are live; the rest is read again on
// a timer.

import { gql, errorAt } from './api.js';
import { OVERVIEW, FLOW_UPDATES } from './queries.js';
import { h, duration, percent, number, date, lastDays, words, crumbs, everyWhileVisible } from './format.js';
import { throughputChart, cumulativeFlowChart, progressBar } from './charts.js';

export function notAvailable(what, code) {
  return h('p', { class: 'not-available' }, `${what}: not available`, code && code !== 'FORBIDDEN' ? ` (${code})` : '');
}

function metric(label, value, hint) {
  return h('div', { class: 'metric' }, h('dt', {}, label), h('dd', {}, value, hint ? h('span', { class: 'hint' }, ` ${hint}`) : null));
}

function flowPanel(flow, code) {
  if (!flow) return notAvailable('Flow metrics', code);
  return h('dl', { class: 'metrics' },
    metric('Flow velocity', flow.throughput, 'items'),
    metric('Flow time p85', duration(flow.cycleTime.p85)),
    metric('WIP', flow.wipAtEnd),
    metric('Flow efficiency', percent(flow.flowEfficiency.value)));
}

function distribution(flow) {
  if (!flow) return null;
  return h('div', { class: 'distribution' },
    h('h4', {}, 'Flow distribution'),
    h('ul', { class: 'dist-list' },
      flow.throughputByFlowType.map((t) => h('li', { class: `dist-${t.flowType.toLowerCase()}` },
        h('span', { class: 'dist-name' }, words(t.flowType)), ' ', h('span', { class: 'dist-value' }, `${t.count} (${percent(t.share)})`)))));
}

function doraPanel(delivery, code) {
  if (!delivery) return notAvailable('DORA', code);
  const p = delivery.performance;
  const level = (l) => (l ? h('span', { class: `level level-${l.toLowerCase()}` }, words(l)) : '–');
  return h('div', { class: 'dora' },
    h('h4', {}, 'DORA performance'),
    h('dl', { class: 'metrics compact' },
      metric('Deploy frequency', level(p.deploymentFrequency), `${number(delivery.deploymentFrequency, 2)}/day`),
      metric('Lead time for changes', level(p.leadTimeForChanges)),
      metric('Change failure rate', level(p.changeFailureRate)),
      metric('Time to restore', level(p.timeToRestore))));
}

/** Budgets and run-rate costs of the unit's value streams: sensitive, so FORBIDDEN for some roles. */
function investmentPanel(streams, errors, index) {
  if (!streams || !streams.length) return null;
  const refused = streams.some((_, j) => errorAt(errors, ['unit', 'children', index, 'valueStreams', j, 'budget']));
  const money = (v) => (v === null || v === undefined ? '–' : Math.round(v).toLocaleString('en-GB'));
  return h('div', { class: 'investment' },
    h('h4', {}, 'Investment'),
    refused
      ? notAvailable('Investment', 'FORBIDDEN')
      : h('ul', { class: 'streams' }, streams.map((v) => h('li', {},
        h('span', { class: 'stream-name' }, v.name), ' ',
        h('span', { class: 'hint' }, words(v.kind)), ': ',
        `budget ${money(v.budget)}${v.budgetPeriod ? ` (${v.budgetPeriod})` : ''}, cost ${money(v.costPerPeriod)}${v.costPeriod ? ` per ${words(v.costPeriod)}` : ''}`))));
}

/** Objectives with their key results (listed in a `details`, open when `open` has the objective's key). */
export function objectivesPanel(objectives, open = new Set()) {
  if (!objectives || !objectives.length) return null;
  return h('div', { class: 'objectives' },
    h('h4', {}, 'Objectives'),
    h('ul', {}, objectives.map((o) => {
      const late = o.forecast.p85 && new Date(o.forecast.p85) > new Date(o.periodEnd);
      return h('li', { class: 'objective' },
        h('p', { class: 'objective-title' }, o.title),
        h('div', { class: 'pair' },
          h('span', {}, `Key results ${percent(o.progress)}`), progressBar(o.progress, `${o.title}: key-result progress`),
          h('span', {}, `Delivery ${percent(o.delivery.progress)}`), progressBar(o.delivery.progress, `${o.title}: delivery progress`)),
        h('p', { class: late ? 'forecast late' : 'forecast' },
          `85 % forecast ${date(o.forecast.p85)} against period end ${date(o.periodEnd)}`,
          late ? ' — at risk' : ' — on track'),
        h('details', { dataset: { objective: o.key }, open: open.has(o.key) }, h('summary', {}, `${o.keyResults.length} key results`),
          h('ul', {}, o.keyResults.map((k) => h('li', {}, `${k.title}: ${percent(k.progress)}`)))));
    })));
}

/** Renders the overview of `key` over the last `days` days into `main`. */
export async function renderOverview(main, { key, days, navigate, live }) {
  const first = await gql(OVERVIEW, { key, window: lastDays(days) });
  const unit = first.data.unit;
  if (!unit) {
    main.replaceChildren(h('h1', { tabindex: -1 }, 'Unknown unit'), h('p', {}, `No unit has the key ${key}.`));
    return () => {};
  }
  // Each unit shown (this one and its children) has a host for its flow
  // numbers, which the live metric subscription feeds, and a host for the
  // rest (charts, distribution, DORA, investment, objectives), which has no
  // subscription and is read again on a timer.
  const shown = new Map();
  const hosts = (u) => {
    const x = { flow: h('div', { class: 'flow-host' }), rest: h('div', { class: 'rest-host' }), metrics: u.flowMetrics };
    shown.set(u.key, x);
    return x;
  };
  const own = hosts(unit);
  const peers = unit.children.length ? unit.children : null;
  const cards = (peers || []).map((c) => {
    const x = hosts(c);
    return h('article', { class: 'peer', 'aria-labelledby': `peer-${c.key}` },
      h('h3', { id: `peer-${c.key}` },
        h('a', { href: `#/overview/${c.key}`, onclick: (e) => { e.preventDefault(); navigate(`#/overview/${c.key}`); } }, c.name),
        h('span', { class: 'kind' }, ` ${words(c.kind)}`)),
      x.flow, x.rest);
  });

  /** Paints an answer of OVERVIEW into the hosts, keeping open key results open. */
  const paint = ({ data, errors }) => {
    const u = data.unit;
    if (!u) return;
    const open = new Set([...main.querySelectorAll('details[open][data-objective]')].map((d) => d.dataset.objective));
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('details[data-objective]');
    const x = shown.get(u.key);
    x.metrics = u.flowMetrics;
    x.flow.replaceChildren(flowPanel(u.flowMetrics, errorAt(errors, ['unit', 'flowMetrics'])));
    x.rest.replaceChildren(
      u.flowMetrics ? h('div', { class: 'charts' },
        h('figure', {}, h('figcaption', {}, 'Throughput per week'), throughputChart(u.flowMetrics.throughputByWeek, u.name)),
        h('figure', {}, h('figcaption', {}, 'Cumulative flow'), cumulativeFlowChart(u.flowMetrics.cumulativeFlow, u.name))) : '',
      objectivesPanel(u.objectives, open) || '');
    u.children.forEach((c, i) => {
      const y = shown.get(c.key);
      if (!y) return;
      y.metrics = c.flowMetrics;
      y.flow.replaceChildren(flowPanel(c.flowMetrics, errorAt(errors, ['unit', 'children', i, 'flowMetrics'])));
      y.rest.replaceChildren(...[
        distribution(c.flowMetrics),
        doraPanel(c.deliveryMetrics, errorAt(errors, ['unit', 'children', i, 'deliveryMetrics'])),
        investmentPanel(c.valueStreams, errors, i),
        objectivesPanel(c.objectives, open),
      ].filter(Boolean));
    });
    if (focused && !focused.isConnected) {
      const again = main.querySelector(`details[data-objective="${CSS.escape(focused.dataset.objective)}"] summary`);
      if (again) again.focus();
    }
  };
  paint(first);

  // Every flow panel the viewer may read follows the live metric
  // subscription: the server pushes new numbers when the unit's work
  // changes, at most once a second.
  const stops = [];
  for (const u of [unit, ...(peers || [])]) {
    if (!u.flowMetrics) continue;
    const x = shown.get(u.key);
    stops.push(live.subscribe(FLOW_UPDATES, { unit: u.id, days }, {
      next: (data) => {
        if (x.metrics) x.flow.replaceChildren(flowPanel({ ...x.metrics, ...data.flowMetricsUpdates }));
      },
    }));
  }
  stops.push(everyWhileVisible(async () => {
    try {
      paint(await gql(OVERVIEW, { key, window: lastDays(days) }));
    } catch {
      // The next turn tries again; a session that ended has left the view.
    }
  }));

  // replaceChildren would write a null as the text "null": leave them out.
  main.replaceChildren(...[
    crumbs(unit, 'overview'),
    h('h1', { tabindex: -1 }, `${unit.name} overview`),
    h('p', { class: 'lede' }, `Last ${days} days. `, h('a', { href: `#/board/${unit.key}` }, `Open the ${unit.name} board`)),
    h('section', { 'aria-labelledby': 'unit-flow' },
      h('h2', { id: 'unit-flow' }, unit.name),
      own.flow, own.rest),
    peers
      ? h('section', { 'aria-labelledby': 'peers' },
        h('h2', { id: 'peers' }, `${words(peers[0].kind)}s of ${unit.name}`.replace(/^./, (c) => c.toUpperCase())),
        h('div', { class: 'peers' }, cards))
      : null,
  ].filter(Boolean));
  return () => stops.forEach((stop) => stop());
}
