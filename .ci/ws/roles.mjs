#!/usr/bin/env node
// Role-scoped subscriptions over graphql-ws (the real `graphql-ws` client on
// top of `ws`), against a running `gemba serve --demo`.
//
// Usage:
//   node roles.mjs <http-graphql-url> <path-to-server-stdout-log>
//   eg: node roles.mjs http://127.0.0.1:18080/graphql /tmp/x/stdout.log
//
// The demo password is read from the server's stdout log (the last field of
// the line containing team@gemba.local; every demo user shares it).
//
// What it checks:
//   1. program@ (PROGRAM_MANAGER of payments-checkout) and borealis.dev1@
//      (TEAM_MEMBER of team-borealis) both subscribe to
//      workItemEvents(payments-checkout);
//   2. team@ moves a NEW team-atlas story to "In Progress";
//   3. program@ creates a FEATURE in payments-checkout;
//   4. after ~2 s: program@ saw the story's MOVED event and the feature's
//      CREATED event; borealis.dev1@ saw the feature's CREATED event and
//      nothing about the story or any other team-atlas item;
//   5. borealis.dev1@ subscribing to team-atlas gets extensions.code FORBIDDEN;
//   6. a connection with a bad token is closed with code 4403.
//
// Exit codes: 0 all checks passed, 1 any failure (including the 30 s global
// timeout), 2 usage error.

import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const GLOBAL_TIMEOUT_MS = 30_000;
const HTTP_TIMEOUT_MS = 10_000;
const SETTLE_MS = 500; // after subscribing, before mutating
const COLLECT_MS = 2_000; // after mutating, before asserting
const WAIT_MS = 5_000; // for connects / single-shot outcomes

const PROGRAM = 'program@gemba.local';
const TEAM = 'team@gemba.local';
const SIBLING = 'borealis.dev1@gemba.local';
const PROGRAM_UNIT = 'payments-checkout';
const ATLAS_UNIT = 'team-atlas';
const TARGET_STATE = 'In Progress';

const Q = {
  login: `mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }`,
  unit: `query($k: String!) { unit(key: $k) { id } }`,
  newStories: `query($u: ID!) { workItems(unit: $u, first: 50, filter: {types: [STORY], stateCategories: [NEW], scope: UNIT_ONLY}) { nodes { id key state } } }`,
  move: `mutation($i: ID!, $s: String!) { moveWorkItem(input: {workItem: $i, toState: $s}) { workItem { key state } } }`,
  createFeature: `mutation($u: ID!) { createWorkItem(input: {unit: $u, type: FEATURE, title: "WS test feature"}) { workItem { id key } } }`,
  events: `subscription($u: ID!) { workItemEvents(unit: $u) { kind at workItem { key state unit { key } } } }`,
};

// ---- args, global timeout ---------------------------------------------------
const [httpUrl, logPath, ...extra] = process.argv.slice(2);
if (!httpUrl || !logPath || extra.length) {
  console.error('usage: node roles.mjs <http-graphql-url> <path-to-server-stdout-log>');
  process.exit(2);
}
let wsUrl;
try {
  const u = new URL(httpUrl);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = u.pathname.replace(/\/+$/, '') + '/ws';
  wsUrl = u.toString();
} catch {
  console.error(`error: not an http(s) URL: ${httpUrl}`);
  process.exit(2);
}

const globalTimer = setTimeout(() => {
  console.error(`FAIL: global timeout (${GLOBAL_TIMEOUT_MS / 1000} s) reached`);
  process.exit(1);
}, GLOBAL_TIMEOUT_MS);

// ---- helpers ----------------------------------------------------------------
const checks = [];
function check(name, ok, detail = '') {
  checks.push({ name, ok: Boolean(ok), detail });
}

const clients = [];
async function finish(code, message) {
  if (message) console.error(message);
  await Promise.allSettled(clients.map((c) => c.dispose()));
  clearTimeout(globalTimer);
  process.exit(code);
}

function describe(x) {
  if (x === undefined) return 'undefined';
  if (x instanceof Error) return `${x.name}: ${x.message}`;
  if (x && typeof x === 'object' && 'code' in x && 'reason' in x) {
    return `close event ${x.code} ${JSON.stringify(x.reason ?? '')}`;
  }
  try {
    return JSON.stringify(x);
  } catch {
    return String(x);
  }
}

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    sleep(ms, undefined, { ref: false }).then(() => {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }),
  ]);
}

async function gql(query, variables, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(httpUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status}, non-JSON body: ${text.slice(0, 300)}`);
  }
  if (body.errors?.length) throw new Error(`GraphQL errors: ${describe(body.errors)}`);
  if (!res.ok || !body.data) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
  return body.data;
}

async function login(email, password) {
  try {
    return (await gql(Q.login, { e: email, p: password })).login.token;
  } catch (err) {
    throw new Error(`login as ${email} failed: ${err.message}`, { cause: err.cause });
  }
}

// A graphql-ws client that records close events and resolves `connected`.
function wsClient(label, token) {
  let onConnected;
  const connected = new Promise((resolve) => (onConnected = resolve));
  const closes = [];
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { token },
    lazy: false,
    retryAttempts: 0,
    onNonLazyError: () => {}, // surfaced through `closes` and the sinks instead
    on: {
      connected: () => onConnected(),
      closed: (event) => closes.push(event),
    },
  });
  clients.push(client);
  return { label, client, connected, closes };
}

// Subscribe and record everything the sink receives.
function subscribe(client, query, variables) {
  const sub = { events: [], errors: [], completed: false };
  sub.done = new Promise((resolve) => {
    sub.unsubscribe = client.subscribe(
      { query, variables },
      {
        next: (result) => {
          if (result.errors?.length) sub.errors.push(...result.errors);
          const ev = result.data?.workItemEvents;
          if (ev) sub.events.push(ev);
        },
        error: (err) => {
          sub.errors.push(...(Array.isArray(err) ? err : [err]));
          resolve();
        },
        complete: () => {
          sub.completed = true;
          resolve();
        },
      },
    );
  });
  return sub;
}

const fmtEvent = (e) =>
  `${e.kind} ${e.workItem?.key} state=${JSON.stringify(e.workItem?.state)} unit=${e.workItem?.unit?.key}`;
const fmtEvents = (events) => events.map(fmtEvent).join('; ') || 'nothing';
const fmtErrors = (errors) => `[${errors.map(describe).join(', ')}]`;
const errorCodes = (errors) => errors.map((e) => e?.extensions?.code ?? e?.code ?? describe(e));

// ---- main -------------------------------------------------------------------
async function main() {
  // Password from the server log.
  let log;
  try {
    log = readFileSync(logPath, 'utf8');
  } catch (err) {
    throw new Error(`cannot read server log ${logPath}: ${err.message}`);
  }
  const line = log.split('\n').find((l) => l.includes(TEAM));
  if (!line) throw new Error(`no line containing ${TEAM} in ${logPath} (was the server started with --demo?)`);
  const password = line.trim().split(/\s+/).pop();

  const [programToken, teamToken, siblingToken] = await Promise.all(
    [PROGRAM, TEAM, SIBLING].map((email) => login(email, password)),
  );

  const unitId = async (key) => {
    const unit = (await gql(Q.unit, { k: key }, programToken)).unit;
    if (!unit?.id) throw new Error(`unit ${key} not found`);
    return unit.id;
  };
  const programUnitId = await unitId(PROGRAM_UNIT);
  const atlasUnitId = await unitId(ATLAS_UNIT);

  const stories = (await gql(Q.newStories, { u: atlasUnitId }, teamToken)).workItems.nodes;
  if (!stories.length) {
    throw new Error(`no NEW story in ${ATLAS_UNIT} to move (run against a freshly seeded --demo server)`);
  }
  const story = stories[0];

  // (1) Subscribe as the program manager and as the sibling team member.
  const pm = wsClient('PROGRAM_MANAGER', programToken);
  const sib = wsClient('sibling TEAM_MEMBER', siblingToken);
  await withTimeout(Promise.all([pm.connected, sib.connected]), WAIT_MS, 'both WebSocket connections').catch((err) => {
    const closes = [pm, sib].map((c) => `${c.label}: ${fmtErrors(c.closes)}`).join(', ');
    throw new Error(`${err.message} (${wsUrl}; close events: ${closes})`);
  });
  const pmSub = subscribe(pm.client, Q.events, { u: programUnitId });
  const sibSub = subscribe(sib.client, Q.events, { u: programUnitId });
  await sleep(SETTLE_MS);

  // (2) team@ moves the Atlas story; (3) program@ creates a feature.
  const moved = (await gql(Q.move, { i: story.id, s: TARGET_STATE }, teamToken)).moveWorkItem.workItem;
  if (moved.state !== TARGET_STATE) throw new Error(`move returned state ${moved.state}, expected ${TARGET_STATE}`);
  const feature = (await gql(Q.createFeature, { u: programUnitId }, programToken)).createWorkItem.workItem;

  // (4) Collect, then assert.
  await sleep(COLLECT_MS);
  pmSub.unsubscribe();
  sibSub.unsubscribe();
  // Put the story back so the script can be re-run against the same server
  // (best effort: a failure here is only reported).
  const restored = await gql(Q.move, { i: story.id, s: story.state }, teamToken).then(
    () => `moved ${story.key} back to "${story.state}"`,
    (err) => `warning: could not move ${story.key} back to "${story.state}": ${err.message}`,
  );

  const about = (events, key) => events.filter((e) => e.workItem?.key === key);
  const pmStory = about(pmSub.events, story.key);
  const pmFeature = about(pmSub.events, feature.key);
  const sibStory = about(sibSub.events, story.key);
  const sibFeature = about(sibSub.events, feature.key);
  const sibAtlas = sibSub.events.filter((e) => e.workItem?.unit?.key === ATLAS_UNIT);

  check('program manager: subscription had no errors', pmSub.errors.length === 0, fmtErrors(pmSub.errors));
  check(
    `program manager: MOVED ${story.key} to "${TARGET_STATE}" in ${ATLAS_UNIT}`,
    pmStory.some(
      (e) => e.kind === 'MOVED' && e.workItem.state === TARGET_STATE && e.workItem.unit?.key === ATLAS_UNIT,
    ),
    `got: ${fmtEvents(pmStory)}`,
  );
  check(
    `program manager: CREATED ${feature.key} in ${PROGRAM_UNIT}`,
    pmFeature.some((e) => e.kind === 'CREATED' && e.workItem.unit?.key === PROGRAM_UNIT),
    `got: ${fmtEvents(pmFeature)}`,
  );
  check('sibling member: subscription had no errors', sibSub.errors.length === 0, fmtErrors(sibSub.errors));
  check(
    `sibling member: CREATED ${feature.key} in ${PROGRAM_UNIT}`,
    sibFeature.some((e) => e.kind === 'CREATED' && e.workItem.unit?.key === PROGRAM_UNIT),
    `got: ${fmtEvents(sibFeature)}`,
  );
  check(
    `sibling member: nothing about ${story.key}`,
    sibStory.length === 0,
    `got: ${fmtEvents(sibStory)}`,
  );
  check(
    `sibling member: no event for any ${ATLAS_UNIT} item`,
    sibAtlas.length === 0,
    `got: ${fmtEvents(sibAtlas)}`,
  );

  // (5) Out-of-scope subscription: FORBIDDEN, via `error` or `next` with errors.
  const forbidden = subscribe(sib.client, Q.events, { u: atlasUnitId });
  let forbiddenOutcome = 'settled';
  await withTimeout(forbidden.done, WAIT_MS, 'the out-of-scope subscription to end').catch((err) => {
    forbiddenOutcome = err.message;
    forbidden.unsubscribe();
  });
  const codes = errorCodes(forbidden.errors);
  check(
    `sibling member subscribing to ${ATLAS_UNIT}: FORBIDDEN`,
    codes.includes('FORBIDDEN') && forbidden.events.length === 0,
    `error codes: ${describe(codes)}, events: ${forbidden.events.length}, ${forbiddenOutcome}`,
  );

  // (6) Bad token: the connection is closed with 4403 Forbidden.
  const bad = wsClient('bad token', 'not-a-valid-token');
  const badSub = subscribe(bad.client, Q.events, { u: programUnitId });
  let badOutcome = 'settled';
  await withTimeout(badSub.done, WAIT_MS, 'the bad-token connection to be rejected').catch((err) => {
    badOutcome = err.message;
  });
  const closeCodes = [...bad.closes, ...badSub.errors].map((x) => x?.code).filter((c) => c !== undefined);
  check(
    'bad token: connection closed with 4403',
    closeCodes.length > 0 && closeCodes.every((c) => c === 4403) && badSub.events.length === 0,
    `close codes: ${describe(closeCodes)}, sink errors: ${fmtErrors(badSub.errors)}, ${badOutcome}`,
  );

  // Summary.
  console.log(`graphql-ws role checks against ${wsUrl}`);
  console.log(`  moved ${story.key} (${ATLAS_UNIT}) to "${TARGET_STATE}" as ${TEAM}; created ${feature.key} as ${PROGRAM}`);
  console.log(`  ${restored}`);
  console.log(`  ${PROGRAM} received ${pmSub.events.length}: ${fmtEvents(pmSub.events)}`);
  console.log(`  ${SIBLING} received ${sibSub.events.length}: ${fmtEvents(sibSub.events)}`);
  for (const c of checks) {
    console.log(`  ${c.ok ? 'PASS' : 'FAIL'}  ${c.name}${c.ok ? '' : `\n        ${c.detail}`}`);
  }
  const failed = checks.filter((c) => !c.ok).length;
  if (failed) return finish(1, `FAIL: ${failed} of ${checks.length} checks failed`);
  console.log(`OK: all ${checks.length} checks passed`);
  return finish(0);
}

main().catch((err) => {
  let message = describe(err);
  for (let cause = err?.cause; cause; cause = cause.cause) message += ` <- ${cause.code ?? ''} ${cause.message ?? cause}`;
  return finish(1, `FAIL: ${message}`);
});
