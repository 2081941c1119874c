// Live updates: the notifications websocket (SPEC §3.4) plus a periodic
// access-info check, so that a revoked token is noticed within seconds even
// when the socket is down.
//
// Browsers cannot set headers on a websocket, so this is the only place where
// the token goes in a URL (the `auth` query parameter).

const REVOKED_CODES = new Set([4401, 4403]);
const POLL_MS = 3000;

export class Live {
  /**
   * @param {object} o
   * @param {import('./api.js').Api} o.api token holder (its base URL and token are used)
   * @param {(msg: object) => void} o.onMessage a notification frame
   * @param {() => void} o.onRevoked socket closed as revoked/expired
   * @param {(info: object) => void} o.onAccessInfo result of each access-info check
   * @param {(state: string) => void} o.onStatus 'live' | 'connecting' | 'offline'
   * @param {() => void} o.onTick called on each poll while the socket is not open
   */
  constructor(o) {
    this.o = o;
    this.ws = null;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.pollTimer = null;
    this.polling = false;
    this.wasOpen = false;
  }

  start() {
    this.connect();
    this.pollTimer = setInterval(() => this.poll(), POLL_MS);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pollTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try { ws.close(1000, 'bye'); } catch { /* already closed */ }
    }
  }

  get open() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  socketURL() {
    const { api } = this.o;
    const u = new URL(api.base + 'socket');
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.searchParams.set('auth', api.token);
    return u.toString();
  }

  connect() {
    if (this.stopped) return;
    this.o.onStatus?.('connecting');
    let ws;
    try {
      ws = new WebSocket(this.socketURL());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.o.onStatus?.('live');
      // Something may have changed while we were disconnected.
      if (this.wasOpen) this.o.onMessage({ type: 'reconnected' });
      this.wasOpen = true;
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg && typeof msg.type === 'string') this.o.onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (REVOKED_CODES.has(ev.code)) {
        this.o.onRevoked();
        return;
      }
      this.o.onStatus?.('offline');
      this.scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  scheduleReconnect() {
    if (this.stopped) return;
    const base = Math.min(30000, 1000 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 10);
    const delay = base / 2 + Math.random() * (base / 2);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  async poll() {
    if (this.stopped || this.polling) return;
    this.polling = true;
    try {
      const info = await this.o.api.get('access-info');
      if (!this.stopped) this.o.onAccessInfo?.(info);
      if (!this.stopped && !this.open) this.o.onTick?.();
    } catch {
      // Auth failures are reported by the Api's onAuthLost; network errors
      // are retried at the next tick.
    } finally {
      this.polling = false;
    }
  }
}
