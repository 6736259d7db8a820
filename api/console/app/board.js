// A unit's board: its columns with WIP limits, its own items as cards
// (blocked flags, age, the progress of their children), the items of the
// units below in swimlanes, and the unit's cumulative flow. Cards move by
// dragging (mouse, pen or touch) or by keyboard (Space picks a card up, the arrows carry it,
// Space drops it, Escape puts it back); a move the server refuses (a WIP
// limit that blocks, a conflict) snaps back and says why. The board follows
// `boardEvents` while it is open; its charts are read again on a timer.

import { gql, ApiError } from './api.js';
import { UNIT, BOARD, UNIT_FLOW, MOVE, BOARD_EVENTS, TEAM_INSIGHTS, VALUE_STREAM_MAP, ITEM_FORECASTS } from './queries.js';
import { h, duration, lastDays, words, crumbs, percent, date, everyWhileVisible } from './format.js';
import { cumulativeFlowChart, agingChart, cycleScatter, progressBar } from './charts.js';
import { notAvailable } from './executive.js';

/** The item type of the swimlanes under a board of each unit kind. */
const LANES = { ORGANIZATION: 'EPIC', PORTFOLIO: 'FEATURE', PROGRAM: 'STORY' };
const PLURAL = { EPIC: 'epics', FEATURE: 'features', STORY: 'stories' };
/** Item types in the order the forecast table lists them. */
const TYPE_ORDER = ['EPIC', 'FEATURE', 'STORY', 'DEFECT', 'TASK', 'RISK', 'DEBT'];
const FINISHED = new Set(['DONE', 'CANCELED']);
/** Cards shown in a done or canceled column; the rest are counted. */
const FINISHED_CARDS = 3;

function cardView(card, { movable }) {
  const c = card.children;
  const id = card.workItem.id;
  const el = h('li', {
    class: `card${card.blocked ? ' blocked' : ''}`,
    tabindex: movable ? 0 : null,
    dataset: { id, key: card.key, state: card.state, type: card.type },
    'aria-describedby': movable ? 'move-help' : null,
  },
  h('p', { class: 'card-head' }, h('span', { class: 'card-key' }, card.key), ' ', h('span', { class: `badge type-${card.flowType.toLowerCase()}` }, words(card.type))),
  h('p', { class: 'card-title' }, card.title),
  h('p', { class: 'card-meta' },
    card.blocked ? h('span', { class: 'flag' }, 'Blocked') : null,
    h('span', {}, `${duration(card.ageInState)} in state`),
    card.assignee ? h('span', {}, card.assignee.name) : null),
  c.total > 0
    ? h('div', { class: 'children' },
      h('span', {}, `${c.done}/${c.total} children done${c.blocked ? `, ${c.blocked} blocked` : ''}`),
      progressBar(c.progress, `${card.key}: children done`))
    : null);
  return el;
}

function columnHead(col, idPrefix) {
  const limit = col.wipLimit === null || col.wipLimit === undefined ? '' : ` / ${col.wipLimit}`;
  return h('header', { class: 'column-head' },
    h('h3', { id: `${idPrefix}-h` }, col.name),
    h('span', { class: `count${col.overLimit ? ' over' : ''}`, dataset: { count: col.count } },
      `${col.count}${limit}`, col.wipLimit !== null && col.wipLimit !== undefined ? h('span', { class: 'sr-only' }, ' items against the WIP limit') : null,
      col.overLimit ? h('span', { class: 'over-text' }, ' over limit') : null));
}

function columnView(col, i, { movable, cardsVisible, idPrefix }) {
  const id = `${idPrefix}-${i}`;
  // Finished work matters less on a board than work in flow: a few cards.
  const finished = col.category === 'DONE' || col.category === 'CANCELED';
  const cards = cardsVisible ? col.cards.nodes.slice(0, finished ? FINISHED_CARDS : undefined) : [];
  const more = cardsVisible && col.cards.totalCount > cards.length ? h('p', { class: 'more' }, `and ${col.cards.totalCount - cards.length} more`) : null;
  return h('section', { class: `column cat-${col.category.toLowerCase()}`, 'aria-labelledby': `${id}-h`, dataset: { state: col.name } },
    columnHead(col, id),
    h('ol', { class: 'cards', dataset: { state: col.name }, 'aria-labelledby': `${id}-h` }, cards.map((c) => cardView(c, { movable }))),
    more);
}

/** A value stream map: its stages in order with process and wait time and %C&A, then the totals. */
function streamMap(stream, map) {
  const stage = (st) => h('li', { class: `stage${st.valueAdding ? '' : ' non-value'}` },
    h('p', { class: 'stage-name' }, st.name),
    h('dl', {},
      h('dt', {}, 'Items'), h('dd', {}, st.items),
      h('dt', {}, 'Process time'), h('dd', {}, duration(st.processTime.mean)),
      h('dt', {}, 'Wait time'), h('dd', {}, duration(st.waitTime.mean)),
      h('dt', {}, '%C&A'), h('dd', {}, percent(st.completeAndAccurate.value))));
  return h('section', { class: 'vsm', 'aria-label': `Value stream map: ${stream.name}` },
    h('h3', {}, stream.name, h('span', { class: 'kind' }, ` ${words(stream.kind)} stream`)),
    h('ol', { class: 'stages' }, map.stages.map(stage)),
    h('p', { class: 'vsm-totals' },
      `${map.items} items completed; mean lead time ${duration(map.leadTime.mean)}, `,
      `process ${duration(map.processTime.mean)}, wait ${duration(map.waitTime.mean)}; `,
      `activity ratio ${percent(map.activityRatio.value)}; rolled %C&A ${percent(map.rolledCompleteAndAccurate)}`));
}

/** The items' "when will it be done?" as a table: one row per unfinished item. */
function forecastTable(items, unitName) {
  if (!items.length) return h('p', { class: 'note' }, 'No feature or item with children in progress or waiting to start.');
  const when = (f, iso) => (f.remaining === 0 ? 'nothing left' : iso ? date(iso) : 'no forecast');
  return h('table', { class: 'item-forecasts' },
    h('caption', { class: 'sr-only' }, `When the items of ${unitName} will be done`),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Left'),
      h('th', { scope: 'col' }, '50 %'), h('th', { scope: 'col' }, '85 %'))),
    h('tbody', {}, items.map((it) => h('tr', { dataset: { key: it.key } },
      h('th', { scope: 'row' }, h('span', { class: 'card-key' }, it.key), ' ', h('span', { class: 'hint' }, words(it.type)), h('br'), it.title),
      h('td', {}, it.state),
      h('td', { class: 'num' }, it.forecast.remaining),
      h('td', {}, when(it.forecast, it.forecast.p50)),
      h('td', { class: 'p85' }, when(it.forecast, it.forecast.p85))))));
}

/** Renders the board of `key` into `main`; returns the function that closes it. */
export async function renderBoard(main, { key, days, live, announce }) {
  const { data } = await gql(UNIT, { key });
  const unit = data.unit;
  if (!unit) {
    main.replaceChildren(h('h1', { tabindex: -1 }, 'Unknown unit'), h('p', {}, `No unit has the key ${key}.`));
    return () => {};
  }
  const lanes = LANES[unit.kind];
  // A portfolio's board maps its own value streams; a program's maps its
  // portfolio's, which its managers may read but not change (only the
  // portfolio's managers write them).
  const portfolio = unit.kind === 'PROGRAM' ? unit.ancestors.find((a) => a.kind === 'PORTFOLIO') : null;
  const streams = unit.valueStreams.length ? unit.valueStreams : portfolio ? portfolio.valueStreams : [];
  const inherited = !unit.valueStreams.length && streams.length > 0;
  const boardHost = h('div', { class: 'board-host' }, h('p', {}, 'Loading the board…'));
  const cfdHost = h('div', { class: 'cfd-host' });
  const agingHost = h('div', { class: 'aging-host' });
  const cycleHost = h('div', { class: 'cycle-host' });
  const vsmHost = h('div', { class: 'vsm-host' });
  const forecastHost = h('div', { class: 'forecast-host' }, h('p', {}, 'Loading…'));
  const status = h('p', { id: 'board-status', role: 'status', class: 'status' });
  const alert = h('p', { id: 'board-alert', role: 'alert', class: 'alert' });
  // replaceChildren would write a null as the text "null": leave them out.
  main.replaceChildren(...[
    crumbs(unit, 'board'),
    h('h1', { tabindex: -1 }, `${unit.name} board`),
    h('p', { class: 'lede' }, h('a', { href: `#/overview/${unit.key}` }, `${unit.name} overview`)),
    h('p', { id: 'move-help', class: 'help' }, 'To move a card with the keyboard: focus it, press Space to pick it up, the arrow keys to carry it, Space to drop it or Escape to cancel.'),
    status, alert,
    h('section', { 'aria-labelledby': 'board-h' }, h('h2', { id: 'board-h', class: 'sr-only' }, 'Columns'), boardHost),
    streams.length
      ? h('section', { 'aria-labelledby': 'vsm-h', class: 'panel vsm-panel' },
        h('h2', { id: 'vsm-h' }, inherited ? `Value stream maps of ${portfolio.name}, last ${days} days` : `Value stream maps, last ${days} days`),
        inherited ? h('p', { class: 'help' }, `The value streams of the ${portfolio.name} portfolio, which ${unit.name} works in: read only, its portfolio managers maintain them.`) : null,
        vsmHost)
      : null,
    h('div', { class: 'charts' },
      h('section', { 'aria-labelledby': 'cfd-h', class: 'panel' }, h('h2', { id: 'cfd-h' }, `Cumulative flow, last ${days} days`), cfdHost),
      h('section', { 'aria-labelledby': 'aging-h', class: 'panel' }, h('h2', { id: 'aging-h' }, 'Aging work in progress'), agingHost),
      unit.kind === 'TEAM'
        ? h('section', { 'aria-labelledby': 'cycle-h', class: 'panel' }, h('h2', { id: 'cycle-h' }, `Cycle time, last ${days} days`), cycleHost)
        : null,
      unit.kind === 'TEAM'
        ? h('section', { 'aria-labelledby': 'items-forecast-h', class: 'panel items-forecast' },
          h('h2', { id: 'items-forecast-h' }, 'When the items will be done'),
          h('p', { class: 'help' }, 'The features the team\'s cards belong to, and its cards with children, that are in progress or not started: Monte Carlo dates by which half and 85 % of the trials finish the leaves left.'),
          forecastHost)
        : null),
  ].filter(Boolean));

  let board = null;
  let closed = false;
  let busy = false;

  async function loadBoard() {
    try {
      const res = await gql(BOARD, { unit: unit.id, lanes: lanes || 'STORY', withLanes: Boolean(lanes) });
      if (closed) return;
      board = res.data.board;
      draw();
      if (unit.kind === 'TEAM') await loadForecasts(false);
    } catch (e) {
      if (closed) return;
      if (unit.kind === 'TEAM') forecastHost.replaceChildren(notAvailable('Forecasts of the items', e.code));
      if (e instanceof ApiError && e.code === 'FORBIDDEN') boardHost.replaceChildren(notAvailable('Board', e.code));
      else boardHost.replaceChildren(h('p', { class: 'error' }, `The board cannot be loaded (${e.code || 'ERROR'}).`));
    }
  }

  function draw() {
    const focused = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.key;
    const movable = board.cardsVisible;
    // A board scrolls sideways: it takes focus so keyboards can scroll it.
    const own = h('div', { class: 'board', dataset: { unit: unit.key }, role: 'region', tabindex: 0, 'aria-label': `${unit.name} columns` },
      board.columns.map((col, i) => columnView(col, i, { movable, cardsVisible: board.cardsVisible, idPrefix: 'col' })));
    const parts = [board.cardsVisible ? null : h('p', { class: 'note' }, 'Cards of this board are not available to you: columns show counts only.'), own];
    if (board.lanes && board.lanes.length) {
      parts.push(h('h2', { class: 'lanes-title' }, `Swimlanes: ${PLURAL[lanes]} of the units below`));
      board.lanes.forEach((lane, li) => {
        parts.push(h('section', { class: 'lane', 'aria-labelledby': `lane-${li}-t`, dataset: { lane: lane.unit.key } },
          h('h3', { id: `lane-${li}-t`, class: 'lane-title' }, lane.unit.name),
          h('div', { class: 'board lane-board', role: 'region', tabindex: 0, 'aria-label': `${lane.unit.name} columns` }, lane.columns.map((col, i) => columnView(col, i, { movable: false, cardsVisible: true, idPrefix: `lane-${li}` })))));
      });
    }
    boardHost.replaceChildren(...parts.filter(Boolean));
    if (movable) wire(own);
    if (focused) {
      const again = boardHost.querySelector(`.card[data-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  async function loadFlow() {
    try {
      const res = await gql(UNIT_FLOW, { unit: unit.id, window: lastDays(days) });
      if (closed) return;
      const flow = res.data.node && res.data.node.flowMetrics;
      cfdHost.replaceChildren(flow ? cumulativeFlowChart(flow.cumulativeFlow, unit.name) : notAvailable('Cumulative flow', 'FORBIDDEN'));
      // oldestWip lists only items the viewer may read; agingWip counts them all.
      const hidden = flow && !flow.oldestWip.length && flow.agingWip.count > 0;
      agingHost.replaceChildren(!flow
        ? notAvailable('Aging work in progress', 'FORBIDDEN')
        : hidden
          ? h('p', { class: 'note' }, `${flow.agingWip.count} items in progress, median age ${duration(flow.agingWip.p50)}; the items themselves are not available to you.`)
          : agingChart(flow.oldestWip, flow.cycleTime, unit.name));
    } catch (e) {
      if (closed) return;
      cfdHost.replaceChildren(notAvailable('Cumulative flow', e.code));
      agingHost.replaceChildren(notAvailable('Aging work in progress', e.code));
    }
  }

  /** A team's completed items as a cycle-time scatterplot, and how many it will finish in the next two weeks. */
  async function loadInsights() {
    const window = lastDays(days);
    try {
      const res = await gql(TEAM_INSIGHTS, { unit: unit.id, window });
      if (closed) return;
      const u = res.data.node;
      if (!u || !u.flowMetrics) {
        cycleHost.replaceChildren(notAvailable('Cycle time', 'FORBIDDEN'));
        return;
      }
      const from = Date.parse(window.from);
      const points = res.data.workItems.nodes.flatMap((item) => {
        const active = item.transitions.find((t) => t.toCategory === 'ACTIVE' || t.toCategory === 'WAITING');
        const done = [...item.transitions].reverse().find((t) => t.toCategory === 'DONE');
        if (!active || !done) return [];
        const end = Date.parse(done.at);
        return end >= from ? [{ key: item.key, title: item.title, done: end, cycle: (end - Date.parse(active.at)) / 1000 }] : [];
      });
      const f = u.throughputForecast;
      const scatter = points.length || !u.flowMetrics.cycleTime.count
        ? cycleScatter(points, u.flowMetrics.cycleTime, window, unit.name)
        : h('p', { class: 'note' }, `${u.flowMetrics.cycleTime.count} items completed; the items themselves are not available to you.`);
      cycleHost.replaceChildren(
        scatter,
        h('p', { class: 'forecast-note' }, f.p85 === null
          ? 'No forecast: nothing was completed over the sample (the last 90 days).'
          : `Forecast for the next ${f.days} days: at least ${f.p85} item${f.p85 === 1 ? '' : 's'} with 85 % confidence, ${f.p50} with 50 % (Monte Carlo over ${f.sampleCompleted} recent completions).`));
    } catch (e) {
      if (!closed) cycleHost.replaceChildren(notAvailable('Cycle time', e.code));
    }
  }

  /**
   * The forecasts of the parents of the team's cards and of its unfinished
   * cards with children, in one request; again when that set changes or
   * when `always`.
   */
  let forecastIds = null;
  async function loadForecasts(always) {
    if (!board || !board.cardsVisible) {
      forecastHost.replaceChildren(notAvailable('Forecasts of the items', 'FORBIDDEN'));
      return;
    }
    const ids = new Set();
    for (const col of board.columns) {
      for (const card of col.cards.nodes) {
        if (card.workItem.parent) ids.add(card.workItem.parent.id);
        if (card.children.total > 0 && !FINISHED.has(col.category)) ids.add(card.workItem.id);
      }
    }
    const list = [...ids].sort().slice(0, 100);
    const key = list.join(' ');
    if (!always && key === forecastIds) return;
    forecastIds = key;
    try {
      const res = await gql(ITEM_FORECASTS, { ids: list });
      if (closed || key !== forecastIds) return;
      const items = res.data.nodes
        .filter((n) => n && n.forecast && !FINISHED.has(n.stateCategory))
        .sort((a, b) => TYPE_ORDER.indexOf(a.type) - TYPE_ORDER.indexOf(b.type) || a.key.localeCompare(b.key, 'en', { numeric: true }));
      forecastHost.replaceChildren(forecastTable(items, unit.name));
    } catch (e) {
      if (!closed) forecastHost.replaceChildren(notAvailable('Forecasts of the items', e.code));
    }
  }

  async function loadStreams() {
    const window = lastDays(days);
    const maps = await Promise.all(streams.map(async (stream) => {
      try {
        const res = await gql(VALUE_STREAM_MAP, { stream: stream.id, window });
        return streamMap(stream, res.data.valueStreamMap);
      } catch (e) {
        return notAvailable(`Value stream map of ${stream.name}`, e.code);
      }
    }));
    if (!closed) vsmHost.replaceChildren(...maps);
  }

  /** Where the card now sits in the DOM, as a `CardPosition`. */
  function positionOf(cardEl) {
    const prev = cardEl.previousElementSibling;
    const next = cardEl.nextElementSibling;
    if (prev && prev.dataset.id) return { after: prev.dataset.id };
    if (next && next.dataset.id) return { before: next.dataset.id };
    return null;
  }

  async function commit(cardEl) {
    const list = cardEl.closest('ol.cards');
    const toState = list.dataset.state;
    const from = cardEl.dataset.state;
    busy = true;
    try {
      const res = await gql(MOVE, { item: cardEl.dataset.id, state: toState, position: positionOf(cardEl) });
      if (res.errors.length) throw new ApiError(res.errors[0].extensions?.code || 'INTERNAL', res.errors[0].message);
      const moved = res.data.moveWorkItem;
      alert.textContent = '';
      status.textContent = `${cardEl.dataset.key} moved to ${moved.workItem.state}${moved.wipLimitExceeded ? ' — the column is now over its WIP limit' : ''}.`;
    } catch (e) {
      const why = e.code === 'CONFLICT'
        ? `the board refuses it (${e.message})`
        : e.code === 'FORBIDDEN' ? 'you may not move this item' : `${e.message}`;
      alert.textContent = `${cardEl.dataset.key} was not moved from ${from} to ${toState}: ${why} [${e.code || 'ERROR'}]`;
      alert.dataset.code = e.code || 'ERROR';
    } finally {
      busy = false;
      await loadBoard();
    }
  }

  function wire(root) {
    // Dragging uses pointer events, so a mouse, a pen and a finger all
    // work: past a few pixels of movement the card is picked up, a marker
    // shows where it would land, and releasing over a column moves it
    // there. The card itself stays put until the release.
    const marker = h('li', { class: 'drop-marker', 'aria-hidden': 'true' });
    let drag = null;
    const end = () => {
      if (drag && drag.card) drag.card.classList.remove('dragging');
      marker.remove();
      drag = null;
    };
    root.addEventListener('pointerdown', (e) => {
      const card = e.target.closest && e.target.closest('.card');
      if (!card || busy || e.button !== 0 || card.classList.contains('grabbed')) return;
      drag = { card, x: e.clientX, y: e.clientY, id: e.pointerId, started: false };
    });
    root.addEventListener('pointermove', (e) => {
      if (!drag || e.pointerId !== drag.id) return;
      if (!drag.started) {
        if (Math.hypot(e.clientX - drag.x, e.clientY - drag.y) < 6) return;
        drag.started = true;
        drag.card.classList.add('dragging');
        drag.card.setPointerCapture(e.pointerId);
      }
      e.preventDefault();
      const under = document.elementFromPoint(e.clientX, e.clientY);
      const column = under && under.closest('.column');
      const list = column && root.contains(column) && column.querySelector('ol.cards');
      if (!list) {
        marker.remove();
        return;
      }
      const before = [...list.querySelectorAll('.card:not(.dragging)')].find((c) => {
        const r = c.getBoundingClientRect();
        return e.clientY < r.top + r.height / 2;
      });
      if (marker.parentElement !== list || marker.nextElementSibling !== (before || null)) list.insertBefore(marker, before || null);
    });
    root.addEventListener('pointerup', (e) => {
      if (!drag || e.pointerId !== drag.id) return;
      const { card, started } = drag;
      const target = marker.parentElement;
      if (started && target) {
        if (marker.nextElementSibling !== card && marker.previousElementSibling !== card) target.insertBefore(card, marker);
        end();
        commit(card);
        return;
      }
      end();
    });
    root.addEventListener('pointercancel', end);
    root.addEventListener('keydown', (e) => {
      const card = e.target.closest && e.target.closest('.card');
      if (!card || busy) return;
      const grabbed = card.classList.contains('grabbed');
      if (e.key === ' ' || e.key === 'Enter') {
        e.preventDefault();
        if (!grabbed) {
          card.classList.add('grabbed');
          status.textContent = `${card.dataset.key} picked up in ${card.dataset.state}. Arrow keys move it, Space drops it, Escape cancels.`;
        } else {
          card.classList.remove('grabbed');
          commit(card);
        }
        return;
      }
      if (!grabbed) return;
      const list = card.parentElement;
      const lists = [...root.querySelectorAll('ol.cards')];
      const li = lists.indexOf(list);
      if (e.key === 'Escape') {
        e.preventDefault();
        status.textContent = `${card.dataset.key}: move cancelled.`;
        draw();
        return;
      }
      if (e.key === 'ArrowUp' && card.previousElementSibling) list.insertBefore(card, card.previousElementSibling);
      else if (e.key === 'ArrowDown' && card.nextElementSibling) list.insertBefore(card.nextElementSibling, card);
      else if ((e.key === 'ArrowLeft' && li > 0) || (e.key === 'ArrowRight' && li < lists.length - 1)) {
        const target = lists[li + (e.key === 'ArrowLeft' ? -1 : 1)];
        const index = [...list.children].indexOf(card);
        target.insertBefore(card, target.children[index] || null);
      } else return;
      e.preventDefault();
      card.focus();
      status.textContent = `${card.dataset.key}: ${card.closest('ol.cards').dataset.state}, position ${[...card.parentElement.children].indexOf(card) + 1}.`;
    });
  }

  await Promise.all([loadBoard(), loadFlow(), unit.kind === 'TEAM' ? loadInsights() : null, streams.length ? loadStreams() : null]);
  // The charts, the forecast and the value stream maps have no live
  // subscription: they are read again on a timer while the page is visible.
  const stopTimer = everyWhileVisible(() => Promise.all([
    loadFlow(),
    unit.kind === 'TEAM' ? loadInsights() : null,
    unit.kind === 'TEAM' ? loadForecasts(true) : null,
    streams.length ? loadStreams() : null,
  ]));

  let pending = null;
  const refresh = () => {
    if (pending || closed) return;
    pending = window.setTimeout(() => {
      pending = null;
      if (!busy && !document.querySelector('.card.grabbed, .card.dragging')) loadBoard();
      else refresh();
    }, 100);
  };
  const stop = live.subscribe(BOARD_EVENTS, { unit: unit.id }, {
    next: refresh,
    reconnected: refresh,
    error: (errs) => {
      const code = errs[0] && errs[0].extensions && errs[0].extensions.code;
      if (code === 'LAGGED') refresh();
      else announce(`Live updates of this board are not available (${code || 'ERROR'}).`);
    },
  });
  return () => {
    closed = true;
    stop();
    stopTimer();
  };
}
