// houston.js - a dependency-free client for houston's WebSocket API, for
// browsers and Node (the global WebSocket: Node 22+, or Node 20 with
// --experimental-websocket). One ES module; see README.md beside it.
//
//   import { Houston } from "./houston.js";
//   const h = new Houston({ url: "wss://rt.example.com/api/v1/ws", token });
//   h.on("message", (msg) => console.log(msg.topic, msg.content));
//   h.on("reset", () => askMyBackendToSubscribeMeAgain(h.connectionID));
//
// What it does for the application:
// - reconnects after any drop, with exponential backoff and full jitter
//   (base 250 ms, cap 30 s), except after close() and the server's
//   "disconnected by server" (4000; see README);
// - resumes the connection when the server supports it: the connected frame
//   carries a resumeToken, and the reconnect goes to
//   <url>?resume=<token>&lastID=<last message id received>; the server
//   answers resumed:true and replays what was missed, or resumed:false (the
//   connection is new: "reset" is emitted so the app subscribes again);
// - acknowledges what it delivered (batched: the highest id at most every
//   500 ms) when the server supports resume;
// - delivers each message at most once: ids are ULIDs, ordered as strings,
//   and a message whose id is <= the last delivered of its topic is dropped.
//
// A message or a topic deleted through the API (DELETE /api/v1/messages/{id},
// /api/v1/topics/{topic}) comes as a "deleted" event ({topic, id}; id null
// for a whole topic, whose subscription the server dropped: it is not
// renewed after a reset either).
//
// The topic calls of the HTTP API (topic, topics, setTopic, deleteMessage,
// deleteTopic) go to
// options.apiUrl (the API port) with options.apiKey: for backends and
// operators' tools, since the API key must not reach a browser.

export const BACKOFF_BASE_MS = 250;
export const BACKOFF_CAP_MS = 30000;
export const ACK_INTERVAL_MS = 500;

// Close codes after which the client does not reconnect by itself:
// 1000 is our own close(); 4000 is the backend disconnecting this client on
// purpose (DELETE /api/v1/connections/{id}) - reconnecting would undo it.
const FINAL_CLOSE_CODES = new Set([1000, 4000]);
const TOKEN_EXPIRED = 4001;

// Frame types the server sends; any other text frame is a notification
// (POST /api/v1/notification pushes its payload as is).
const SERVER_FRAME_TYPES = new Set([
  "connected",
  "message",
  "subscribed",
  "unsubscribed",
  "error",
  "refreshed",
  "deleted",
]);
const SUBSCRIBE_ERROR_CODES = new Set([
  "forbidden",
  "invalid_topic",
  "too_many_subscriptions",
  "internal",
]);

/** The delay before reconnect attempt n (0-based): full jitter, a uniform
 *  draw in [0, min(cap, base * 2^n)). */
export function backoffDelay(attempt, { base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** A lastIdStore kept in memory (the default). Any object with get() and
 *  set(id) will do, e.g. one over localStorage, so a reloaded page resumes
 *  from where it was. */
export function memoryLastIdStore(initial = null) {
  let value = initial;
  return {
    get: () => value,
    set: (id) => {
      value = id;
    },
  };
}

export class Houston {
  /**
   * @param {object} options
   * @param {string} options.url  ws:// or wss:// URL of /api/v1/ws
   * @param {string|function():(string|Promise<string>)} [options.token]
   *        client token (sent as ?token=); a function is called before each
   *        connect, so an expired token (close 4001) can be replaced
   * @param {{get():(string|null), set(id:string):void}} [options.lastIdStore]
   * @param {boolean} [options.autoConnect=true]  connect at construction
   * @param {number} [options.backoffBase=250] @param {number} [options.backoffCap=30000]
   * @param {number} [options.ackInterval=500]
   * @param {"auto"|boolean} [options.acks="auto"]  auto: when the server resumes
   * @param {string} [options.apiUrl]  http(s):// base of the HTTP API (topic calls)
   * @param {string} [options.apiKey]  sent as Authorization: Bearer to the API
   * Test seams: options.WebSocket, options.random, options.setTimeout,
   * options.clearTimeout, options.fetch.
   * url is required unless apiUrl is given and autoConnect is false (an
   * API-only client).
   */
  constructor(options = {}) {
    if (!options.url && !(options.apiUrl && options.autoConnect === false))
      throw new TypeError("Houston: options.url is required");
    this.url = options.url ?? null;
    this.apiUrl = options.apiUrl ? options.apiUrl.replace(/\/+$/, "") : null;
    this.apiKey = options.apiKey ?? null;
    this._fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    this.token = options.token ?? null;
    this.lastIdStore = options.lastIdStore ?? memoryLastIdStore();
    this.backoffBase = options.backoffBase ?? BACKOFF_BASE_MS;
    this.backoffCap = options.backoffCap ?? BACKOFF_CAP_MS;
    this.ackInterval = options.ackInterval ?? ACK_INTERVAL_MS;
    this.acks = options.acks ?? "auto";
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._random = options.random ?? Math.random;
    this._setTimeout = options.setTimeout ?? globalThis.setTimeout.bind(globalThis);
    this._clearTimeout = options.clearTimeout ?? globalThis.clearTimeout.bind(globalThis);
    if (typeof this._WebSocket !== "function")
      throw new Error(
        "Houston: no WebSocket class (Node 20 needs --experimental-websocket; or pass options.WebSocket)",
      );

    this.state = "idle"; // idle | connecting | open | reconnecting | closed
    this.connectionID = null;
    this.resumeToken = null;
    this.attempt = 0; // reconnect attempts since the last connected frame
    this._handlers = new Map();
    this._ws = null;
    this._everConnected = false;
    this._closedByUser = false;
    this._retryTimer = null;
    this._lastByTopic = new Map(); // topic -> last delivered id
    this._topics = new Set(); // subscribed with subscribe(): renewed after a reset
    this._pending = []; // {topic, kind, resolve, reject}
    this._ackTimer = null;
    this._ackedId = null; // the highest id sent in an ack
    this._lastAckAt = -Infinity;
    this._acksOn = false;
    if (options.autoConnect !== false) this.connect();
  }

  /** Adds a handler: "message" (msg, frame), "connected" (frame),
   *  "notification" (payload string), "state" (state), "reset" (frame),
   *  "close" ({code, reason, willReconnect}), "error" (frame or Error),
   *  "deleted" ({topic, id}, frame: id null when the whole topic went). */
  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    this._handlers.get(event)?.delete(fn);
    return this;
  }

  _emit(event, ...args) {
    for (const fn of [...(this._handlers.get(event) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        // An application handler's exception must not break the client.
        if (event !== "error") this._emit("error", err);
      }
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", state);
  }

  /** Opens the connection (done by the constructor unless autoConnect is false). */
  connect() {
    if (!this.url) throw new TypeError("Houston: options.url is required to connect");
    if (this._ws || this.state === "connecting") return;
    this._closedByUser = false;
    this._open();
  }

  async _open() {
    this._setState(this._everConnected ? "reconnecting" : "connecting");
    let url;
    try {
      url = new URL(this.url);
      const token = typeof this.token === "function" ? await this.token() : this.token;
      if (token) url.searchParams.set("token", token);
      if (this.resumeToken) {
        url.searchParams.set("resume", this.resumeToken);
        const lastId = this.lastIdStore.get();
        if (lastId) url.searchParams.set("lastID", lastId);
      }
    } catch (err) {
      this._emit("error", err);
      this._scheduleReconnect();
      return;
    }
    if (this._closedByUser) {
      this._finish();
      return;
    }
    let ws;
    try {
      ws = new this._WebSocket(url.toString());
    } catch (err) {
      this._emit("error", err);
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.onmessage = (ev) => this._onFrame(ws, ev.data);
    ws.onclose = (ev) => this._onClose(ws, ev.code, ev.reason);
    ws.onerror = () => {}; // a close event follows; it decides what to do
  }

  _onFrame(ws, data) {
    if (ws !== this._ws) return;
    if (typeof data !== "string") return; // the server sends text frames only
    let frame = null;
    if (data.startsWith("{")) {
      try {
        frame = JSON.parse(data);
      } catch {
        frame = null;
      }
    }
    if (!frame || typeof frame !== "object" || !SERVER_FRAME_TYPES.has(frame.type)) {
      this._emit("notification", data);
      return;
    }
    switch (frame.type) {
      case "connected":
        return this._onConnected(frame);
      case "message":
        return this._onMessage(frame);
      case "subscribed":
      case "unsubscribed":
        return this._settle(frame.type === "subscribed" ? "subscribe" : "unsubscribe", frame.topic, null, frame);
      case "error":
        if (SUBSCRIBE_ERROR_CODES.has(frame.code) && this._pending.length) {
          // Error frames name no topic: the oldest pending request is the
          // best guess (the server may answer a refusal before an earlier
          // subscribe that is still being stored).
          const req = this._pending.shift();
          if (req.kind === "subscribe") this._topics.delete(req.topic);
          req.reject(Object.assign(new Error(frame.message ?? frame.code), { code: frame.code, frame }));
        }
        this._emit("error", frame);
        return;
      case "deleted":
        return this._onDeleted(frame);
      default:
        this._emit(frame.type, frame);
    }
  }

  // Comes after the message it names (the server's order). A deleted
  // topic's subscription is gone on the server: not renewed after a reset.
  _onDeleted(frame) {
    const id = typeof frame.id === "string" ? frame.id : null;
    if (id === null) this._topics.delete(frame.topic);
    this._emit("deleted", { topic: frame.topic, id }, frame);
  }

  _onConnected(frame) {
    const wasResume = this._everConnected;
    this.connectionID = frame.connectionID;
    this.resumeToken = frame.resumeToken ?? null;
    this._acksOn = this.acks === "auto" ? Boolean(frame.resumeToken) : Boolean(this.acks);
    this._everConnected = true;
    this.attempt = 0;
    this._ackedId = null;
    this._setState("open");
    this._emit("connected", frame);
    // A new connection after a drop (the server forgot us, or cannot
    // resume): the app's subscriptions are gone.
    if (wasResume && frame.resumed !== true) {
      for (const topic of this._topics) this._send({ type: "subscribe", topic });
      this._emit("reset", frame);
    }
  }

  _onMessage(frame) {
    const msg = frame.message;
    if (!msg || typeof msg.id !== "string") return;
    const last = this._lastByTopic.get(msg.topic);
    if (last !== undefined && msg.id <= last) return; // already delivered
    this._lastByTopic.set(msg.topic, msg.id);
    const stored = this.lastIdStore.get();
    if (!stored || msg.id > stored) this.lastIdStore.set(msg.id);
    this._emit("message", msg, frame);
    if (this._acksOn) this._scheduleAck();
  }

  /** The highest id delivered: the one the next ack carries. */
  get lastId() {
    return this.lastIdStore.get();
  }

  _scheduleAck() {
    if (this._ackTimer !== null) return;
    // At most one ack per interval; the first one of a quiet period waits
    // for the interval too, so a burst becomes one ack.
    this._ackTimer = this._setTimeout(() => {
      this._ackTimer = null;
      this._flushAck();
    }, this.ackInterval);
  }

  _flushAck() {
    const id = this.lastIdStore.get();
    if (!id || id === this._ackedId || !this._acksOn) return;
    if (this._send({ type: "ack", id })) this._ackedId = id;
  }

  _send(obj) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1 /* OPEN */) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  _settle(kind, topic, err, frame) {
    const i = this._pending.findIndex((p) => p.kind === kind && p.topic === topic);
    if (i < 0) return;
    const [req] = this._pending.splice(i, 1);
    if (err) req.reject(err);
    else req.resolve(frame);
  }

  _request(kind, topic) {
    return new Promise((resolve, reject) => {
      if (!this._send({ type: kind, topic })) {
        reject(Object.assign(new Error("not connected"), { code: "not_connected" }));
        return;
      }
      this._pending.push({ kind, topic, resolve, reject });
    });
  }

  /** Subscribes this connection to topic by itself (when the server allows
   *  client-side subscriptions). Resolves with the subscribed frame; rejects
   *  with an Error carrying the server's code. The topic is subscribed again
   *  after a reset. */
  subscribe(topic) {
    this._topics.add(topic);
    return this._request("subscribe", topic);
  }

  unsubscribe(topic) {
    this._topics.delete(topic);
    return this._request("unsubscribe", topic);
  }

  /** Closes with 1000 and stops reconnecting; an unsent ack goes first. */
  close() {
    this._closedByUser = true;
    this._cancelRetry();
    if (this._ackTimer !== null) {
      this._clearTimeout(this._ackTimer);
      this._ackTimer = null;
      this._flushAck();
    }
    const ws = this._ws;
    if (ws && (ws.readyState === 0 || ws.readyState === 1)) ws.close(1000);
    else this._finish(1000, "");
  }

  _cancelRetry() {
    if (this._retryTimer !== null) {
      this._clearTimeout(this._retryTimer);
      this._retryTimer = null;
    }
  }

  _onClose(ws, code, reason) {
    if (ws !== this._ws) return;
    this._ws = null;
    if (this._ackTimer !== null) {
      this._clearTimeout(this._ackTimer);
      this._ackTimer = null;
    }
    for (const req of this._pending.splice(0))
      req.reject(Object.assign(new Error(`connection closed (${code})`), { code: "closed" }));
    const expiredWithoutRenewal = code === TOKEN_EXPIRED && typeof this.token !== "function";
    const final = this._closedByUser || FINAL_CLOSE_CODES.has(code) || expiredWithoutRenewal;
    this._emit("close", { code, reason, willReconnect: !final });
    if (final) {
      this._finish(code, reason);
      return;
    }
    this._scheduleReconnect();
  }

  _finish() {
    this._cancelRetry();
    this._setState("closed");
  }

  // ---- the topic calls of the HTTP API (docs/api.md, "Topics") ----------------

  /** GET /api/v1/topics/{name}: {topic, messages, firstID, lastID,
   *  subscribers, retentionAge, retentionCount, overrides, prunedID}.
   *  Rejects with an Error carrying status and code (404 not_found when the
   *  topic has no messages, subscribers or settings). */
  topic(name) {
    return this._api("GET", `/api/v1/topics/${encodeURIComponent(name)}`);
  }

  /** GET /api/v1/topics: one page, {topics: [...], next}; pass next as
   *  after for the following page (null at the end). */
  topics({ prefix, after, limit } = {}) {
    const q = new URLSearchParams();
    if (prefix) q.set("prefix", prefix);
    if (after) q.set("after", after);
    if (limit !== undefined) q.set("limit", String(limit));
    const query = q.toString();
    return this._api("GET", `/api/v1/topics${query ? `?${query}` : ""}`);
  }

  /** PUT /api/v1/topics/{name} with {retentionAge, retentionCount} (either;
   *  null: back to the server's default); resolves with the topic. */
  setTopic(name, settings) {
    return this._api("PUT", `/api/v1/topics/${encodeURIComponent(name)}`, settings);
  }

  /** POST /api/v1/messages/batch: messages [{topic, content, author}, ...]
   *  (at most the server's limits.maxBatch, 1000 by default) stored all or
   *  nothing; resolves with {messages: [...]} in order (201; with the same
   *  idempotencyKey and messages again: the original answer, 200). Rejects
   *  with an Error carrying status, code and body (a bad element: 400 or
   *  413, body.error.index naming it; nothing stored). */
  publishBatch(messages, { idempotencyKey } = {}) {
    const headers = idempotencyKey !== undefined ? { "Idempotency-Key": idempotencyKey } : {};
    return this._api("POST", "/api/v1/messages/batch", { messages }, headers);
  }

  // ---- the user calls of the HTTP API (docs/api.md, "Users") -----------------
  // A connection's user is its token's sub. Backends only: these need the
  // API key (options.apiKey), never a client token.

  /** POST /api/v1/notification {userID, payload}: payload (a string) to every
   *  connection of the user; rejects with status 404 when none is connected. */
  notifyUser(userID, payload) {
    return this._api("POST", "/api/v1/notification", { userID, payload });
  }

  /** GET /api/v1/users/{id}/connections: one page, {connections: [...],
   *  next}; pass next as after for the following page (null at the end). A
   *  user without connections resolves with an empty list. */
  userConnections(userID, { after, limit } = {}) {
    const q = new URLSearchParams();
    if (after) q.set("after", after);
    if (limit !== undefined) q.set("limit", String(limit));
    const query = q.toString();
    return this._api("GET", `/api/v1/users/${encodeURIComponent(userID)}/connections${query ? `?${query}` : ""}`);
  }

  /** DELETE /api/v1/users/{id}/connections: closes every connection of the
   *  user (4000, not resumable); resolves (null) once they are gone. */
  disconnectUser(userID) {
    return this._api("DELETE", `/api/v1/users/${encodeURIComponent(userID)}/connections`);
  }

  /** DELETE /api/v1/messages/{id}?topic=: the message leaves the history;
   *  connected subscribers get "deleted". Resolves with null (204); rejects
   *  with status 404 (code not_found) when the topic has no such message -
   *  also on a retry of a deletion that was done. */
  deleteMessage(topic, id) {
    return this._api(
      "DELETE",
      `/api/v1/messages/${encodeURIComponent(id)}?topic=${encodeURIComponent(topic)}`,
    );
  }

  /** DELETE /api/v1/topics/{name}: its history, settings and subscriptions
   *  go. Resolves with null (204); rejects with status 404 when the topic
   *  has nothing of these. */
  deleteTopic(name) {
    return this._api("DELETE", `/api/v1/topics/${encodeURIComponent(name)}`);
  }

  async _api(method, urlPath, body, extraHeaders = {}) {
    if (!this.apiUrl) throw new TypeError("Houston: options.apiUrl is required for API calls");
    if (typeof this._fetch !== "function") throw new Error("Houston: no fetch (pass options.fetch)");
    const headers = { ...extraHeaders };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    const res = await this._fetch(this.apiUrl + urlPath, {
      method,
      headers,
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const err = new Error(
        `houston: ${method} ${urlPath}: ${res.status} ${data?.error?.message ?? text.slice(0, 200)}`,
      );
      err.status = res.status;
      err.code = data?.error?.code ?? null;
      err.body = data;
      throw err;
    }
    return data;
  }

  _scheduleReconnect() {
    if (this._closedByUser) return;
    this._cancelRetry();
    const delay = backoffDelay(this.attempt, {
      base: this.backoffBase,
      cap: this.backoffCap,
      random: this._random,
    });
    this.attempt += 1;
    this._setState("reconnecting");
    this._emit("reconnecting", { attempt: this.attempt, delay });
    this._retryTimer = this._setTimeout(() => {
      this._retryTimer = null;
      if (!this._closedByUser) this._open();
    }, delay);
  }
}

export default Houston;
