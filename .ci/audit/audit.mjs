#!/usr/bin/env node
// GraphQL-over-HTTP conformance audit (graphql-http `auditServer`).
//
// Usage:
//   node audit.mjs http://127.0.0.1:PORT/graphql [--wait SECONDS]
//
// Env:
//   AUDIT_WAIT_SECONDS      same as --wait: keep retrying the first connection
//                           for up to this many seconds (default 0 = no retry)
//   AUDIT_TIMEOUT_SECONDS   per-request timeout (default 15)
//
// Exit codes:
//   0  every MUST and SHOULD audit passed (MAY audits may fail; they are reported)
//   1  at least one MUST or SHOULD audit did not pass, or an audit crashed
//      (e.g. connection refused / timeout), or the server is unreachable
//   2  usage error

import { serverAudits } from 'graphql-http';

const BODY_PREVIEW_CHARS = 500;

function usage(msg) {
  if (msg) console.error(`error: ${msg}`);
  console.error('usage: node audit.mjs <graphql-url> [--wait SECONDS]');
  console.error('   eg: node audit.mjs http://127.0.0.1:8000/graphql');
  process.exit(2);
}

// ---- args -------------------------------------------------------------------
const args = process.argv.slice(2);
let url;
let waitSeconds = Number(process.env.AUDIT_WAIT_SECONDS ?? 0);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '-h' || a === '--help') usage();
  else if (a === '--wait') waitSeconds = Number(args[++i]);
  else if (a.startsWith('--wait=')) waitSeconds = Number(a.slice(7));
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else if (url === undefined) url = a;
  else usage(`unexpected argument ${a}`);
}
if (!url) usage('missing server URL');
try {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
} catch {
  usage(`not an http(s) URL: ${url}`);
}
if (!Number.isFinite(waitSeconds) || waitSeconds < 0) usage('--wait must be a non-negative number');
const timeoutMs = Number(process.env.AUDIT_TIMEOUT_SECONDS ?? 15) * 1000;

// Global fetch (Node >= 18) with a per-request timeout so a hanging server
// cannot stall CI forever.
const fetchFn = (input, init = {}) =>
  fetch(input, { ...init, signal: init.signal ?? AbortSignal.timeout(timeoutMs) });

// ---- helpers ----------------------------------------------------------------
function describeError(err) {
  if (!err) return String(err);
  const parts = [err.name && err.message ? `${err.name}: ${err.message}` : String(err)];
  let cause = err.cause;
  while (cause) {
    parts.push(cause.code ? `${cause.code} ${cause.message ?? ''}`.trim() : String(cause.message ?? cause));
    cause = cause.cause;
  }
  return parts.join(' <- ');
}

async function describeResponse(res) {
  if (!res || typeof res.status !== 'number') return '(no response)';
  const ct = res.headers?.get?.('content-type') ?? '(none)';
  let body;
  try {
    body = res.bodyUsed ? '(body already consumed)' : await res.text();
  } catch (err) {
    body = `(could not read body: ${describeError(err)})`;
  }
  body = body.replace(/\s+/g, ' ').trim();
  if (body.length > BODY_PREVIEW_CHARS) body = body.slice(0, BODY_PREVIEW_CHARS) + '…';
  return `HTTP ${res.status} content-type: ${ct} body: ${body || '(empty)'}`;
}

const isBlocking = (name) => name.startsWith('MUST') || name.startsWith('SHOULD');

// ---- optional wait for the server to come up --------------------------------
async function probe() {
  await fetchFn(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query: '{ __typename }' }),
  });
}

{
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    try {
      await probe();
      break;
    } catch (err) {
      if (Date.now() >= deadline) {
        console.error(`error: cannot reach GraphQL server at ${url}: ${describeError(err)}`);
        if (waitSeconds === 0) console.error('hint: start the server first, or pass --wait SECONDS');
        process.exit(1);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

// ---- run --------------------------------------------------------------------
// Equivalent to `auditServer({ url, fetchFn })` (which is just
// `Promise.all(serverAudits(opts).map((a) => a.fn()))`), but each audit is
// guarded individually: upstream rethrows "fatal" errors (connection reset,
// timeout, ...) and would abort the whole run without saying which audit died.
console.log(`graphql-http auditServer -> ${url}\n`);
const audits = serverAudits({ url, fetchFn });
const results = await Promise.all(
  audits.map(async ({ id, name, fn }) => {
    try {
      return await fn();
    } catch (err) {
      return { id, name, status: 'fatal', reason: describeError(err), response: undefined };
    }
  }),
);

const counts = {};
const blockingFailures = [];
for (const r of results) {
  counts[r.status] = (counts[r.status] ?? 0) + 1;
  const blocking = r.status !== 'ok' && (r.status === 'fatal' || isBlocking(r.name));
  if (blocking) blockingFailures.push(r);
  console.log(`${r.status.toUpperCase().padEnd(6)} ${r.id} ${r.name}`);
  if (r.status !== 'ok') {
    console.log(`         reason:   ${r.reason}`);
    if (r.response) console.log(`         response: ${await describeResponse(r.response)}`);
  }
}

console.log(
  `\n${results.length} audits: ` +
    Object.entries(counts)
      .map(([s, n]) => `${n} ${s}`)
      .join(', '),
);
if (blockingFailures.length > 0) {
  console.log(`\nFAIL: ${blockingFailures.length} audit(s) blocking (MUST/SHOULD not passed, or any audit crashed):`);
  for (const r of blockingFailures) console.log(`  - ${r.id} ${r.name} (${r.reason})`);
  process.exit(1);
}
console.log('\nPASS: all MUST and SHOULD audits passed');
process.exit(0);
