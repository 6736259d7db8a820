// A small client of the graphql-transport-ws protocol (the `graphql-ws`
// library's) over /graphql/ws: the token goes in `connection_init`, each
// subscription is a `subscribe` with its own id. A lost socket reconnects
// with backoff and resubscribes, and each subscription's `reconnected`
// callback lets its view refetch what it may have missed.

import { currentToken } from './api.js';

const PROTOCOL = 'graphql-transport-ws';
/** Close codes meaning the token is no longer good. */
const AUTH_CLOSE = new Set([4401, 4403]);

export class Live {
  constructor({ onAuthLost = () => {}, onStatus = () => {} } = {}) {
    this.subs = new Map();
    this.nextId = 1;
    this.socket = null;
    this.acked = false;
    this.retries = 0;
    this.closed = false;
    this.onAuthLost = onAuthLost;
    this.onStatus = onStatus;
    this.everConnected = false;
  }

  /** Subscribes; returns a function that ends the subscription. */
  subscribe(query, variables, { next = () => {}, error = () => {}, reconnected = () => {} } = {}) {
    const id = String(this.nextId++);
    this.subs.set(id, { query, variables, next, error, reconnected });
    if (this.acked) this.send({ id, type: 'subscribe', payload: { query, variables } });
    else this.connect();
    return () => {
      if (this.subs.delete(id) && this.acked) this.send({ id, type: 'complete' });
    };
  }

  /** Ends every subscription and the socket. */
  close() {
    this.closed = true;
    this.subs.clear();
    if (this.socket) this.socket.close(1000, 'Normal Closure');
    this.socket = null;
  }

  /** Connects again after `ms` (after an authentication close the token turned out still good). */
  reconnectLater(ms) {
    window.setTimeout(() => {
      if (!this.closed && this.subs.size) this.connect();
    }, ms);
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  connect() {
    if (this.socket || this.closed) return;
    const url = new URL('/graphql/ws', window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url, PROTOCOL);
    this.socket = socket;
    this.acked = false;
    socket.addEventListener('open', () => {
      socket.send(JSON.stringify({ type: 'connection_init', payload: { token: currentToken() } }));
    });
    socket.addEventListener('message', (event) => this.receive(event));
    socket.addEventListener('close', (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.acked = false;
      if (this.closed) return;
      if (AUTH_CLOSE.has(event.code)) {
        this.onStatus('offline');
        this.onAuthLost();
        return;
      }
      this.onStatus('reconnecting');
      const delay = Math.min(10000, 500 * 2 ** this.retries++);
      window.setTimeout(() => this.connect(), delay);
    });
  }

  receive(event) {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    switch (msg.type) {
      case 'connection_ack': {
        this.acked = true;
        const again = this.everConnected;
        this.everConnected = true;
        this.retries = 0;
        this.onStatus('live');
        for (const [id, s] of this.subs) {
          this.send({ id, type: 'subscribe', payload: { query: s.query, variables: s.variables } });
          if (again) s.reconnected();
        }
        break;
      }
      case 'ping':
        this.send({ type: 'pong' });
        break;
      case 'next': {
        const s = this.subs.get(msg.id);
        if (!s) break;
        const p = msg.payload || {};
        if (p.errors && p.errors.length && !p.data) s.error(p.errors);
        else s.next(p.data, p.errors || []);
        break;
      }
      case 'error': {
        const s = this.subs.get(msg.id);
        if (s) {
          this.subs.delete(msg.id);
          s.error(msg.payload || []);
        }
        break;
      }
      case 'complete':
        this.subs.delete(msg.id);
        break;
      default:
        break;
    }
  }
}
