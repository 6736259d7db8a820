// Starts GraphiQL on the page GET /graphql serves to browsers: queries and
// mutations over POST /graphql, subscriptions over graphql-ws at
// /graphql/ws, cookies sent to this origin only. Every script it needs comes
// from this server (see api/src/http/console.rs).
//
// A token from the console's sign-in (kept in this origin's session
// storage) is offered as the default Authorization header and as the
// subscription socket's `token`; without one, run the `login` mutation and
// add the header yourself.

'use strict';

(function start() {
  const root = document.getElementById('graphiql');
  const { React, ReactDOM, GraphiQL } = window;
  if (!React || !ReactDOM || !GraphiQL) {
    root.textContent = 'GraphiQL failed to load.';
    return;
  }
  const url = new URL('/graphql', window.location.origin).toString();
  const ws = new URL('/graphql/ws', window.location.origin);
  ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
  let token = null;
  try {
    token = window.sessionStorage.getItem('gemba.token');
  } catch {
    token = null;
  }
  const fetcher = GraphiQL.createFetcher({
    url,
    subscriptionUrl: ws.toString(),
    fetch: (input, init = {}) => window.fetch(input, { ...init, credentials: 'same-origin' }),
    wsConnectionParams: () => {
      const headers = readHeaders();
      const auth = headers.Authorization || headers.authorization || '';
      const bearer = auth.replace(/^Bearer\s+/i, '').trim();
      return bearer ? { token: bearer } : {};
    },
  });
  let headersText = token ? JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2) : '';
  function readHeaders() {
    try {
      return JSON.parse(headersText || '{}');
    } catch {
      return {};
    }
  }
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultEditorToolsVisibility: true,
      defaultHeaders: headersText || undefined,
      onEditHeaders: (text) => {
        headersText = text;
      },
    }),
  );
})();
