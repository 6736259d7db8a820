// The console's GraphQL client: POST /graphql with the token from `login`
// as `Authorization: Bearer`, and Automatic Persisted Queries: a query is
// sent by its SHA-256 hash alone, and again with its text when the server
// answers PERSISTED_QUERY_NOT_FOUND (Apollo's APQ protocol).

const TOKEN_KEY = 'gemba.token';
const EXPIRES_KEY = 'gemba.expires';

/** An error the whole request failed with, with its `extensions.code`. */
export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

let onSessionEnd = () => {};

/** Called with a message when the server refuses the token (expired, revoked, garbage). */
export function whenSessionEnds(callback) {
  onSessionEnd = callback;
}

export function token() {
  try {
    return window.sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** Keeps the token and when it expires (`login`'s `expiresAt`), or forgets both. */
export function setToken(value, expiresAt = null) {
  try {
    if (value) window.sessionStorage.setItem(TOKEN_KEY, value);
    else window.sessionStorage.removeItem(TOKEN_KEY);
    if (value && expiresAt) window.sessionStorage.setItem(EXPIRES_KEY, expiresAt);
    else window.sessionStorage.removeItem(EXPIRES_KEY);
  } catch {
    // Storage disabled: the session lasts as long as the page.
  }
  memoryToken = value;
  memoryExpiry = value ? expiresAt : null;
}

/** When the current token expires, in ms since the epoch; null when unknown. */
export function tokenExpiry() {
  let at = memoryExpiry;
  try {
    at = window.sessionStorage.getItem(EXPIRES_KEY) || at;
  } catch {
    // Storage disabled: what the page remembers.
  }
  const ms = at ? Date.parse(at) : NaN;
  return Number.isNaN(ms) ? null : ms;
}

let memoryToken = null;
let memoryExpiry = null;
const currentToken = () => token() || memoryToken;

const hashes = new Map();

async function sha256(text) {
  if (!window.crypto || !window.crypto.subtle) return null; // not a secure context
  if (!hashes.has(text)) {
    const digest = await window.crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
    hashes.set(text, [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join(''));
  }
  return hashes.get(text);
}

async function post(body) {
  const headers = { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' };
  const t = currentToken();
  if (t) headers.authorization = `Bearer ${t}`;
  let res;
  try {
    res = await window.fetch('/graphql', { method: 'POST', headers, body: JSON.stringify(body), credentials: 'same-origin' });
  } catch {
    throw new ApiError('NETWORK', 'The server cannot be reached.');
  }
  let json;
  try {
    json = await res.json();
  } catch {
    throw new ApiError(`HTTP_${res.status}`, `The server answered ${res.status}.`);
  }
  const first = json.errors && json.errors[0];
  const code = first && first.extensions && first.extensions.code;
  if (res.status === 401 || (code === 'UNAUTHENTICATED' && !json.data)) {
    if (t) {
      setToken(null);
      onSessionEnd('Your session has ended (the token expired or was revoked). Sign in again.');
    }
    throw new ApiError('UNAUTHENTICATED', (first && first.message) || 'Sign in first.');
  }
  return json;
}

/**
 * Runs a query or mutation. Resolves to `{ data, errors }`: field errors
 * (FORBIDDEN on a panel) stay in `errors` for the view to place; a request
 * refused as a whole rejects with an ApiError carrying its code.
 */
export async function gql(query, variables = {}, { persisted = true } = {}) {
  const hash = persisted ? await sha256(query) : null;
  let json;
  if (hash) {
    const extensions = { persistedQuery: { version: 1, sha256Hash: hash } };
    json = await post({ variables, extensions });
    if (codes(json).includes('PERSISTED_QUERY_NOT_FOUND')) json = await post({ query, variables, extensions });
  } else {
    json = await post({ query, variables });
  }
  if (!json.data && json.errors && json.errors.length) {
    const e = json.errors[0];
    throw new ApiError((e.extensions && e.extensions.code) || 'INTERNAL', e.message);
  }
  return { data: json.data, errors: json.errors || [] };
}

function codes(json) {
  return (json.errors || []).map((e) => e.extensions && e.extensions.code);
}

/** The code of the first error at `path` or below it, e.g. `['unit', 'flowMetrics']`. */
export function errorAt(errors, path) {
  const e = errors.find((err) => err.path && path.every((p, i) => err.path[i] === p));
  return e ? (e.extensions && e.extensions.code) || 'INTERNAL' : null;
}

export { currentToken };
