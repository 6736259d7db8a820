// The Gemba console: sign-in, then each viewer lands on their own level —
// executives on the overview of their unit, managers and team members on
// their unit's board. Routes live in the URL fragment:
//   #/overview/<unit-key>   metrics of a unit and the units below it
//   #/board/<unit-key>      the unit's board
// Everything goes through the public API (see api.js and live.js).

import { gql, ApiError, token, setToken, tokenExpiry, whenSessionEnds } from './api.js';
import { Live } from './live.js';
import { LOGIN, LOGOUT, ME, TREE } from './queries.js';
import { h, words } from './format.js';
import { renderOverview } from './executive.js';
import { renderBoard } from './board.js';

const app = document.getElementById('app');
const WINDOWS = [30, 90, 180];
const ORDER = ['ADMIN', 'EXECUTIVE', 'PORTFOLIO_MANAGER', 'PROGRAM_MANAGER', 'TEAM_MEMBER'];

let me = null;
let live = null;
let closeView = () => {};
let expiryTimer = null;
let days = Number(readStore('gemba.days')) || 90;
if (!WINDOWS.includes(days)) days = 90;

function readStore(k) {
  try {
    return window.localStorage.getItem(k);
  } catch {
    return null;
  }
}

function writeStore(k, v) {
  try {
    window.localStorage.setItem(k, v);
  } catch {
    // Storage disabled: the choice lasts as long as the page.
  }
}

/** The membership a viewer lands on: the highest role, then the highest unit. */
function home(memberships) {
  const sorted = [...memberships].sort((a, b) => ORDER.indexOf(a.role) - ORDER.indexOf(b.role));
  const m = sorted[0];
  if (!m) return null;
  const overview = m.role === 'ADMIN' || m.role === 'EXECUTIVE';
  return `#/${overview ? 'overview' : 'board'}/${m.unit.key}`;
}

/**
 * Ends the session when the token expires (the `expiresAt` of `login`),
 * whether or not the page asks the server anything by then.
 */
function watchExpiry() {
  window.clearTimeout(expiryTimer);
  const at = tokenExpiry();
  if (at === null) return;
  const left = at - Date.now();
  if (left <= 0) {
    setToken(null);
    showLogin('Your session has expired. Sign in again.');
    return;
  }
  // setTimeout overflows past 2^31 ms (24.8 days): check again then.
  expiryTimer = window.setTimeout(watchExpiry, Math.min(left, 2 ** 31 - 1));
}

function showLogin(message) {
  window.clearTimeout(expiryTimer);
  closeView();
  closeView = () => {};
  if (live) live.close();
  live = null;
  me = null;
  const error = h('p', { id: 'login-error', class: 'error', role: 'alert' }, message || '');
  const email = h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true, 'aria-describedby': 'login-error' });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'login-error' });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'login', 'aria-labelledby': 'login-title', novalidate: true },
    h('h1', { id: 'login-title', tabindex: -1 }, 'Sign in to Gemba'),
    error,
    h('label', { for: 'email' }, 'Email'), email,
    h('label', { for: 'password' }, 'Password'), password,
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!email.value || !password.value) {
      error.textContent = 'Enter your email and password.';
      return;
    }
    submit.disabled = true;
    error.textContent = '';
    try {
      const { data } = await gql(LOGIN, { email: email.value, password: password.value });
      setToken(data.login.token, data.login.expiresAt);
      await start();
    } catch (err) {
      error.textContent = err.code === 'UNAUTHENTICATED' || err.code === 'BAD_USER_INPUT'
        ? 'The email or password is wrong.'
        : `Sign-in failed: ${err.message} (${err.code})`;
      submit.disabled = false;
    }
  });
  app.replaceChildren(h('main', { id: 'main', class: 'login-page' }, form));
  (message ? email : form.querySelector('h1')).focus();
}

function shell() {
  const picker = h('select', { id: 'window', onchange: (e) => { days = Number(e.target.value); writeStore('gemba.days', days); route(); } },
    WINDOWS.map((d) => h('option', { value: d, selected: d === days }, `Last ${d} days`)));
  const roles = me.memberships.map((m) => h('li', {},
    h('span', { class: 'role' }, words(m.role)), ' of ',
    h('a', { href: `#/overview/${m.unit.key}` }, m.unit.name), ' · ',
    h('a', { href: `#/board/${m.unit.key}` }, 'board')));
  const tree = h('details', { class: 'tree' }, h('summary', {}, 'All units'), h('p', {}, 'Loading…'));
  loadTree(tree);
  const liveState = h('span', { id: 'live-state', class: 'live-state', title: 'Live updates' });
  app.replaceChildren(
    h('a', { href: '#main', class: 'skip' }, 'Skip to content'),
    h('header', { class: 'top' },
      h('a', { href: '#/', class: 'brand' }, 'Gemba'),
      h('nav', { 'aria-label': 'Your units' }, h('ul', { class: 'roles' }, roles)),
      tree,
      h('div', { class: 'tools' },
        h('label', { for: 'window' }, 'Time window'), picker,
        h('span', { class: 'who' }, me.user.name), liveState,
        h('a', { href: '/graphql' }, 'GraphiQL'),
        h('button', { type: 'button', onclick: signOut }, 'Sign out'))),
    h('main', { id: 'main', tabindex: -1 }),
    h('p', { id: 'announce', class: 'sr-only', 'aria-live': 'polite' }));
  live = new Live({
    onStatus: (s) => { liveState.textContent = s; },
    // The socket closes at the token's expiry or revocation. A request
    // then ends the session (401); the server tolerates a few seconds of
    // clock skew, so if the token still passes, the socket tries again
    // a little later.
    onAuthLost: () => { gql(ME).then(() => { if (live) live.reconnectLater(6000); }).catch(() => {}); },
  });
}

/** The organisation tree, readable by every signed-in user: each unit links to its overview and board. */
async function loadTree(details) {
  try {
    const { data } = await gql(TREE);
    const org = data.organization;
    const children = new Map();
    for (const u of org.descendants) {
      const parent = u.parent ? u.parent.key : org.key;
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(u);
    }
    const item = (u) => h('li', {},
      h('a', { href: `#/overview/${u.key}` }, u.name), ' ',
      h('a', { href: `#/board/${u.key}`, class: 'tree-board', 'aria-label': `${u.name} board` }, 'board'),
      children.has(u.key) ? h('ul', {}, children.get(u.key).map(item)) : null);
    details.replaceChildren(details.firstChild, h('nav', { 'aria-label': 'Organisation' }, h('ul', {}, item(org))));
  } catch (e) {
    details.replaceChildren(details.firstChild, h('p', {}, `The unit tree is not available (${e.code}).`));
  }
}

async function signOut() {
  try {
    await gql(LOGOUT);
  } catch {
    // Signed out locally whatever the server says.
  }
  setToken(null);
  window.location.hash = '';
  showLogin('You are signed out.');
}

async function route() {
  if (!me) return;
  closeView();
  closeView = () => {};
  const main = document.getElementById('main');
  const [, view, key] = window.location.hash.match(/^#\/(overview|board)\/([\w.-]+)/) || [];
  if (!view) {
    const target = home(me.memberships);
    if (target) {
      window.location.replace(target);
      return;
    }
    main.replaceChildren(h('h1', { tabindex: -1 }, 'No role yet'), h('p', {}, 'You hold no role on any unit; ask an administrator for one.'));
    return;
  }
  main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
  main.setAttribute('aria-busy', 'true');
  const announce = (text) => { document.getElementById('announce').textContent = text; };
  const navigate = (hash) => { window.location.hash = hash; };
  try {
    const render = view === 'overview' ? renderOverview : renderBoard;
    closeView = await render(main, { key, days, live, navigate, announce });
  } catch (e) {
    if (e instanceof ApiError && e.code === 'UNAUTHENTICATED') return;
    const code = e instanceof ApiError ? e.code : 'CLIENT';
    main.replaceChildren(h('h1', { tabindex: -1 }, 'This view is not available'),
      h('p', { class: 'error', dataset: { code } }, `The server answered with code ${code}: ${e.message}`));
  }
  main.setAttribute('aria-busy', 'false');
  const title = main.querySelector('h1');
  if (title) {
    document.title = `${title.textContent} · Gemba`;
    title.focus();
  }
}

async function start() {
  try {
    const { data } = await gql(ME);
    me = data.me;
  } catch (e) {
    if (e.code !== 'UNAUTHENTICATED') showLogin(`The server answered with code ${e.code}.`);
    return;
  }
  shell();
  watchExpiry();
  await route();
}

whenSessionEnds((message) => showLogin(message));
window.addEventListener('hashchange', route);
if (token()) start();
else showLogin();
