// The overview of a unit for executives (and anyone reading aggregates):
// its children side by side with flow and DORA metrics and objectives,
// the unit's throughput per week and cumulative flow. Clicking a child
// drills down to it.

import { gql, errorAt } from './api.js';
import { OVERVIEW, FLOW_UPDATES } from './queries.js';
import { h, duration, percent, number, date, lastDays, words, crumbs } from './format.js';
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

export function objectivesPanel(objectives) {
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
        h('details', {}, h('summary', {}, `${o.keyResults.length} key results`),
          h('ul', {}, o.keyResults.map((k) => h('li', {}, `${k.title}: ${percent(k.progress)}`)))));
    })));
}

/** Renders the overview of `key` over the last `days` days into `main`. */
export async function renderOverview(main, { key, days, navigate, live }) {
  const { data, errors } = await gql(OVERVIEW, { key, window: lastDays(days) });
  const unit = data.unit;
  if (!unit) {
    main.replaceChildren(h('h1', { tabindex: -1 }, 'Unknown unit'), h('p', {}, `No unit has the key ${key}.`));
    return () => {};
  }
  const peers = unit.children.length ? unit.children : null;
  // Every flow panel the viewer may read follows the live metric
  // subscription: the server pushes new numbers when the unit's work
  // changes, at most once a second.
  const stops = [];
  const follow = (u, panel) => {
    if (!u.flowMetrics) return panel;
    let shown = panel;
    stops.push(live.subscribe(FLOW_UPDATES, { unit: u.id, days }, {
      next: (data) => {
        const fresh = flowPanel({ ...u.flowMetrics, ...data.flowMetricsUpdates });
        shown.replaceWith(fresh);
        shown = fresh;
      },
    }));
    return panel;
  };
  const cards = (peers || []).map((c, i) => {
    const flowCode = errorAt(errors, ['unit', 'children', i, 'flowMetrics']);
    const doraCode = errorAt(errors, ['unit', 'children', i, 'deliveryMetrics']);
    return h('article', { class: 'peer', 'aria-labelledby': `peer-${c.key}` },
      h('h3', { id: `peer-${c.key}` },
        h('a', { href: `#/overview/${c.key}`, onclick: (e) => { e.preventDefault(); navigate(`#/overview/${c.key}`); } }, c.name),
        h('span', { class: 'kind' }, ` ${words(c.kind)}`)),
      follow(c, flowPanel(c.flowMetrics, flowCode)),
      distribution(c.flowMetrics),
      doraPanel(c.deliveryMetrics, doraCode),
      investmentPanel(c.valueStreams, errors, i),
      objectivesPanel(c.objectives));
  });
  const flowCode = errorAt(errors, ['unit', 'flowMetrics']);
  const flow = unit.flowMetrics;
  const unitFlow = follow(unit, flowPanel(flow, flowCode));
  main.replaceChildren(
    crumbs(unit, 'overview'),
    h('h1', { tabindex: -1 }, `${unit.name} overview`),
    h('p', { class: 'lede' }, `Last ${days} days. `, h('a', { href: `#/board/${unit.key}` }, `Open the ${unit.name} board`)),
    h('section', { 'aria-labelledby': 'unit-flow' },
      h('h2', { id: 'unit-flow' }, unit.name),
      unitFlow,
      flow ? h('div', { class: 'charts' },
        h('figure', {}, h('figcaption', {}, 'Throughput per week'), throughputChart(flow.throughputByWeek, unit.name)),
        h('figure', {}, h('figcaption', {}, 'Cumulative flow'), cumulativeFlowChart(flow.cumulativeFlow, unit.name))) : null,
      objectivesPanel(unit.objectives)),
    peers
      ? h('section', { 'aria-labelledby': 'peers' },
        h('h2', { id: 'peers' }, `${words(peers[0].kind)}s of ${unit.name}`.replace(/^./, (c) => c.toUpperCase())),
        h('div', { class: 'peers' }, cards))
      : null,
  );
  return () => stops.forEach((stop) => stop());
}
