// The live connection to `/ws` (authenticated by the session cookie). It
// reconnects by itself with growing, jittered delays, says in the top bar
// whether it is live, and tells pages when they may have missed messages
// (after a reconnect or a `lagged` notice) so they can reload their data.

import { get } from './api.js';

const DELAYS_MS = [500, 1000, 2000, 4000, 8000, 15000];

export class Live {
  constructor() {
    this.listeners = new Map();
    this.attempt = 0;
    this.everOpen = false;
    this.socket = null;
    this.timer = null;
    this.state = 'connecting';
    this.retryAt = 0;
  }

  /** `handler(message)` for messages of `type`; `*` gets all of them. */
  on(type, handler) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(handler);
    return () => this.listeners.get(type)?.delete(handler);
  }

  emit(type, message) {
    for (const key of [type, '*']) {
      for (const handler of this.listeners.get(key) ?? []) {
        try {
          handler(message);
        } catch (error) {
          console.error('live handler failed', error);
        }
      }
    }
  }

  start() {
    window.addEventListener('online', () => this.reconnectNow());
    this.connect();
  }

  reconnectNow() {
    if (this.state === 'live') return;
    clearTimeout(this.timer);
    this.connect();
  }

  connect() {
    this.setState('connecting');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    this.socket = socket;
    socket.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === 'connected') {
        const missed = this.everOpen;
        this.everOpen = true;
        this.attempt = 0;
        this.setState('live');
        if (missed) this.emit('resync', message);
      } else if (message.type === 'lagged') {
        this.emit('resync', message);
      }
      this.emit(message.type, message);
    });
    socket.addEventListener('close', () => this.closed(socket));
  }

  async closed(socket) {
    if (socket !== this.socket) return;
    this.socket = null;
    // A refused upgrade looks like any other close: ask whether the
    // session is still good (the API sends the browser to the login if not).
    if (this.attempt > 0 && navigator.onLine) {
      await get('/me').catch(() => {});
    }
    const base = DELAYS_MS[Math.min(this.attempt, DELAYS_MS.length - 1)];
    const delay = base / 2 + Math.random() * base;
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState('offline');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setState(state) {
    this.state = state;
    this.emit('state', { type: 'state', state, retryAt: this.retryAt });
  }
}

export const live = new Live();
