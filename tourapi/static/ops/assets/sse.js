// Server-Sent Events over fetch(): EventSource cannot send the Authorization header, so the console
// reads the stream itself. SseParser follows the WHATWG event-stream format (any line ending, comments,
// multi-line data, id, retry); LiveStream keeps one connection open and reconnects with Last-Event-ID.

export class SseParser {
  constructor() {
    this.buffer = '';
    this.data = [];
    this.event = '';
    this.lastEventId = '';
    this.retry = null;
  }

  // Feed decoded text; returns the events completed by it: [{event, data, id}].
  push(text) {
    this.buffer += text;
    const events = [];
    let start = 0;
    let i = 0;
    while (i < this.buffer.length) {
      const c = this.buffer[i];
      if (c === '\n' || c === '\r') {
        if (c === '\r' && i + 1 === this.buffer.length) break; // maybe the first half of \r\n: wait
        this.line(this.buffer.slice(start, i), events);
        i += c === '\r' && this.buffer[i + 1] === '\n' ? 2 : 1;
        start = i;
      } else {
        i += 1;
      }
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  line(line, events) {
    if (line === '') {
      if (this.data.length) {
        events.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.lastEventId });
      }
      this.data = [];
      this.event = '';
      return;
    }
    if (line[0] === ':') return; // a comment, e.g. ": keep-alive"
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

// Delay before reconnect attempt n (0-based): 1 s, 2 s, 4 s ... at most 15 s, with +-20% jitter so
// that many screens do not reconnect in lockstep after a server restart.
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(15000, 1000 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export class AuthError extends Error {
  constructor(status) {
    super(`not authorised (${status})`);
    this.status = status;
  }
}

// One live connection to an SSE endpoint that needs a bearer token.
// status: 'connecting' (first attempt) -> 'live' -> 'reconnecting' (dropped, retrying) -> 'live' ...
//         'stopped' after stop(); 'unauthorized' when the token is refused (the caller signs out).
export class LiveStream {
  constructor({ url, token, onEvent, onStatus, onAuthError, fetchImpl, idleTimeoutMs = 40000,
                backoff = backoffDelay }) {
    this.url = url;
    this.token = token;
    this.onEvent = onEvent;
    this.onStatus = onStatus || (() => {});
    this.onAuthError = onAuthError || (() => {});
    this.fetch = fetchImpl || ((...args) => window.fetch(...args));
    this.idleTimeoutMs = idleTimeoutMs; // the server sends a keep-alive comment every 15 s
    this.backoff = backoff;
    this.lastEventId = null;
    this.status = 'stopped';
    this.attempt = 0;
    this.connections = 0;
    this.stopped = true;
    this.controller = null;
    this.wake = null;
    this.immediate = false;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
    if (this.wake) this.wake();
    this.setStatus('stopped');
  }

  // Drop the current connection (if any) and connect again at once, resuming from the last event id.
  reconnectNow() {
    if (this.stopped) return;
    this.attempt = 0;
    this.immediate = true;
    if (this.controller) this.controller.abort();
    if (this.wake) this.wake();
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.onStatus(status);
  }

  async loop() {
    while (!this.stopped) {
      try {
        this.setStatus(this.connections === 0 && this.attempt === 0 ? 'connecting' : 'reconnecting');
        await this.connectOnce();
      } catch (err) {
        if (err instanceof AuthError) {
          this.stopped = true;
          this.setStatus('unauthorized');
          this.onAuthError(err);
          return;
        }
        // network error, HTTP error, or an abort (idle watchdog / reconnectNow): retry below
      }
      if (this.stopped) return;
      this.setStatus('reconnecting');
      if (!this.immediate) {
        await this.sleep(this.backoff(this.attempt));
        this.attempt += 1;
      }
      this.immediate = false;
    }
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  async connectOnce() {
    const controller = new AbortController();
    this.controller = controller;
    let watchdog = null;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(), this.idleTimeoutMs);
    };
    try {
      const headers = { Accept: 'text/event-stream', Authorization: `Bearer ${this.token()}` };
      if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
      arm();
      const response = await this.fetch(this.url, { headers, signal: controller.signal, cache: 'no-store' });
      if (response.status === 401 || response.status === 403) throw new AuthError(response.status);
      if (response.status === 422 && this.lastEventId) {
        this.lastEventId = null; // the server does not know our position: start over with a snapshot
        throw new Error('resume position refused');
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      this.connections += 1;
      this.attempt = 0;
      this.setStatus('live');
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break; // the server closed the stream (restart, deploy): reconnect
        arm();
        for (const event of parser.push(decoder.decode(value, { stream: true }))) {
          if (event.id) this.lastEventId = event.id;
          try {
            this.onEvent(event);
          } catch (err) {
            console.error('event handler failed', event.event, err); // one bad event must not drop the stream
          }
        }
      }
    } finally {
      clearTimeout(watchdog);
      if (this.controller === controller) this.controller = null;
      controller.abort(); // release the connection if we left the loop early
    }
  }
}
