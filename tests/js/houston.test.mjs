// clients/js/houston.js against the real houston binary (houston serve on
// free loopback ports, a temporary SQLite file), plus the timing rules
// (backoff, ack batching) on a scripted WebSocket with a manual clock.
// Run with
//   node --experimental-websocket --test tests/js/houston.test.mjs
// (HOUSTON_BIN: the binary, default build/houston).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { Houston, backoffDelay, memoryLastIdStore } from "../../clients/js/houston.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const BIN = process.env.HOUSTON_BIN || path.join(ROOT, "build", "houston");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startHouston(extra = []) {
  const dir = mkdtempSync(path.join(tmpdir(), "houston-js-"));
  const [ws, api] = [await freePort(), await freePort()];
  const log = path.join(dir, "houston.log");
  const proc = spawn(
    BIN,
    ["serve", "--ws-addr", `127.0.0.1:${ws}`, "--api-addr", `127.0.0.1:${api}`,
      "--db", `sqlite:${path.join(dir, "houston.db")}`, ...extra],
    { stdio: ["ignore", "ignore", openSync(log, "w")] },
  );
  let exited = null;
  proc.on("exit", (code, signal) => {
    exited = code ?? signal;
  });
  const deadline = Date.now() + 10000;
  for (;;) {
    if (exited !== null) throw new Error(`houston exited with ${exited}:\n${readFileSync(log, "utf8")}`);
    try {
      const [a, b] = await Promise.all([
        fetch(`http://127.0.0.1:${ws}/healthz`),
        fetch(`http://127.0.0.1:${api}/healthz`),
      ]);
      if (a.ok && b.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`houston did not start:\n${readFileSync(log, "utf8")}`);
    await sleep(50);
  }
  return { proc, ws, api, dir, log };
}

async function stopHouston(srv) {
  if (!srv) return;
  if (srv.proc.exitCode === null && srv.proc.signalCode === null) {
    const done = new Promise((r) => srv.proc.once("exit", r));
    srv.proc.kill("SIGTERM");
    await done;
  }
  rmSync(srv.dir, { recursive: true, force: true });
}

/** A TCP relay in front of the WebSocket port: drop() cuts every relayed
 *  connection without a close frame, as a mobile network does. */
async function startRelay(targetPort) {
  const pairs = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    const pair = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const drop = () => {
    for (const [client, upstream] of pairs) {
      client.resetAndDestroy(); // RST: no close frame, no FIN
      upstream.resetAndDestroy();
    }
    pairs.clear();
  };
  return {
    port: server.address().port,
    drop,
    close: () => new Promise((r) => {
      drop();
      server.close(r);
    }),
  };
}

async function api(srv, method, urlPath, body) {
  const res = await fetch(`http://127.0.0.1:${srv.api}${urlPath}`, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

/** Resolves with the arguments of the next emit of event (within ms). */
function next(h, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      h.off(event, fn);
      reject(new Error(`no "${event}" within ${ms} ms`));
    }, ms);
    const fn = (...args) => {
      clearTimeout(timer);
      h.off(event, fn);
      resolve(args);
    };
    h.on(event, fn);
  });
}

async function until(cond, ms = 5000, what = "condition") {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

let topicSeq = 0;
const newTopic = () => `js-${process.pid}-${Date.now()}-${topicSeq++}`;

// ---- against the real server ---------------------------------------------------

describe("against houston serve", () => {
  let srv;
  const clients = [];
  const client = (opts) => {
    const h = new Houston({ url: `ws://127.0.0.1:${srv.ws}/api/v1/ws`, backoffBase: 50, ...opts });
    clients.push(h);
    return h;
  };

  before(async () => {
    srv = await startHouston();
  });
  after(async () => {
    for (const h of clients) h.close();
    await sleep(50);
    await stopHouston(srv);
  });

  test("connects and reports its connection id and state", async () => {
    const states = [];
    const h = client({ autoConnect: false });
    h.on("state", (s) => states.push(s));
    const connected = next(h, "connected");
    h.connect();
    const [frame] = await connected;
    assert.equal(frame.type, "connected");
    assert.match(frame.connectionID, /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/);
    assert.equal(h.connectionID, frame.connectionID);
    assert.deepEqual(states, ["connecting", "open"]);
    const closed = next(h, "close");
    h.close();
    const [info] = await closed;
    assert.equal(info.code, 1000);
    assert.equal(info.willReconnect, false);
    assert.equal(h.state, "closed");
  });

  test("delivers messages of a subscription made by the backend, and notifications", async () => {
    const topic = newTopic();
    const h = client();
    await next(h, "connected");
    const sub = await api(srv, "POST", "/api/v1/subscribes", { topic, connectionID: h.connectionID });
    assert.equal(sub.status, 201);
    const got = [];
    h.on("message", (m) => got.push(m));
    const sent = [];
    for (let i = 0; i < 5; i++) {
      const r = await api(srv, "POST", "/api/v1/messages", { topic, content: `m${i}`, author: "js" });
      assert.equal(r.status, 201);
      sent.push(r.json);
    }
    await until(() => got.length === 5, 5000, "5 messages");
    assert.deepEqual(got, sent);
    assert.equal(h.lastId, sent[4].id);
    const note = next(h, "notification");
    const n = await api(srv, "POST", "/api/v1/notification", { connectionID: h.connectionID, payload: "plain text" });
    assert.equal(n.status, 202);
    assert.deepEqual(await note, ["plain text"]);
    h.close();
  });

  test("subscribes by itself with subscribe()", async () => {
    const topic = newTopic();
    const h = client();
    await next(h, "connected");
    const frame = await h.subscribe(topic);
    assert.deepEqual(frame, { type: "subscribed", topic });
    const list = await api(srv, "GET", `/api/v1/subscribes?connectionID=${h.connectionID}`);
    assert.deepEqual(list.json.map((s) => s.topic), [topic]);
    const msg = next(h, "message");
    const r = await api(srv, "POST", "/api/v1/publish", { topic, content: "hi", sender: "x" });
    assert.equal((await msg)[0].id, r.json.id);
    await assert.rejects(h.subscribe("bad topic!"), (err) => err.code === "invalid_topic");
    await h.unsubscribe(topic);
    const empty = await api(srv, "GET", `/api/v1/subscribes?connectionID=${h.connectionID}`);
    assert.deepEqual(empty.json, []);
    h.close();
  });

  test("reconnects after the network drops the connection", async () => {
    const relay = await startRelay(srv.ws);
    try {
      const topic = newTopic();
      const h = client({ url: `ws://127.0.0.1:${relay.port}/api/v1/ws` });
      const [first] = await next(h, "connected");
      await h.subscribe(topic);
      const closed = next(h, "close");
      const reconnected = next(h, "connected");
      relay.drop();
      const [info] = await closed;
      assert.equal(info.willReconnect, true);
      const [second] = await reconnected;
      assert.equal(h.state, "open");
      if (second.resumed === true) assert.equal(second.connectionID, first.connectionID);
      else assert.notEqual(second.connectionID, first.connectionID);
      // Resumed, or new with the subscription renewed by the client (its
      // subscribe may still be in flight: wait until it is stored).
      let subscribed = false;
      for (let i = 0; i < 250 && !subscribed; i++) {
        const subs = await api(srv, "GET", `/api/v1/subscribes?connectionID=${h.connectionID}`);
        subscribed = subs.json.some((s) => s.topic === topic);
        if (!subscribed) await sleep(20);
      }
      assert.ok(subscribed, "subscribed again after the reconnect");
      const msg = next(h, "message");
      const r = await api(srv, "POST", "/api/v1/messages", { topic, content: "after" });
      assert.equal((await msg)[0].id, r.json.id);
      h.close();
    } finally {
      await relay.close();
    }
  });

  test("a reset is emitted when the server cannot resume", async () => {
    const relay = await startRelay(srv.ws);
    try {
      const h = client({ url: `ws://127.0.0.1:${relay.port}/api/v1/ws` });
      await next(h, "connected");
      const reset = next(h, "reset");
      // A token the server does not know, as after the window ran out (or
      // none at all from a server without resume).
      if (h.resumeToken) h.resumeToken = "forged" + h.resumeToken;
      relay.drop();
      const [frame] = await reset;
      assert.notEqual(frame.resumed, true);
      h.close();
    } finally {
      await relay.close();
    }
  });

  test("close 4000 (DELETE /api/v1/connections/{id}) stops reconnecting", async () => {
    const h = client();
    await next(h, "connected");
    const closed = next(h, "close");
    const del = await api(srv, "DELETE", `/api/v1/connections/${h.connectionID}`);
    assert.equal(del.status, 204);
    const [info] = await closed;
    assert.equal(info.code, 4000);
    assert.equal(info.willReconnect, false);
    await sleep(200);
    assert.equal(h.state, "closed");
  });

  test("resume: the messages missed while away arrive once, in order", async (t) => {
    const relay = await startRelay(srv.ws);
    try {
      const topic = newTopic();
      const h = client({ url: `ws://127.0.0.1:${relay.port}/api/v1/ws` });
      const [hello] = await next(h, "connected");
      if (!hello.resumeToken) {
        t.skip("the server does not resume yet (no resumeToken in the connected frame)");
        h.close();
        return;
      }
      const errors = [];
      h.on("error", (e) => errors.push(e));
      await h.subscribe(topic);
      const got = [];
      h.on("message", (m) => got.push(m.id));
      const before = await api(srv, "POST", "/api/v1/messages", { topic, content: "before" });
      await until(() => got.length === 1, 5000, "the first message");
      const resets = [];
      h.on("reset", (f) => resets.push(f));
      // Cut the network; publish while the client is away (its backoff
      // keeps it away for a moment); it comes back with resume + lastID.
      const reconnected = next(h, "connected", 10000);
      relay.drop();
      const missed = [];
      for (let i = 0; i < 20; i++)
        missed.push((await api(srv, "POST", "/api/v1/messages", { topic, content: `away ${i}` })).json.id);
      const [again] = await reconnected;
      assert.equal(again.resumed, true, JSON.stringify(again));
      assert.equal(again.connectionID, hello.connectionID);
      const after = await api(srv, "POST", "/api/v1/messages", { topic, content: "after" });
      await until(() => got.length === 22, 10000, "all 22 messages");
      assert.deepEqual(got, [before.json.id, ...missed, after.json.id]);
      assert.deepEqual(resets, []);
      // The batched ack reaches the server: the connection shows it.
      let lastAck = null;
      for (let i = 0; i < 100 && lastAck !== after.json.id; i++) {
        await sleep(20);
        lastAck = (await api(srv, "GET", `/api/v1/connections/${h.connectionID}`)).json.lastAck;
      }
      assert.equal(lastAck, after.json.id);
      assert.deepEqual(errors, []);
      h.close();
    } finally {
      await relay.close();
    }
  });
});

describe("deletion through the HTTP API", () => {
  let srv;
  before(async () => {
    srv = await startHouston(["--api-key", "js-key"]);
  });
  after(async () => {
    await stopHouston(srv);
  });

  test("deleteMessage and deleteTopic, and the \"deleted\" events", async () => {
    const topic = newTopic();
    const h = new Houston({
      url: `ws://127.0.0.1:${srv.ws}/api/v1/ws`,
      apiUrl: `http://127.0.0.1:${srv.api}`,
      apiKey: "js-key",
    });
    try {
      await next(h, "connected");
      const headers = { "Content-Type": "application/json", Authorization: "Bearer js-key" };
      const post = async (p, body) => {
        const r = await fetch(`http://127.0.0.1:${srv.api}${p}`, { method: "POST", headers, body: JSON.stringify(body) });
        return { status: r.status, json: await r.json() };
      };
      assert.equal((await post("/api/v1/subscribes", { topic, connectionID: h.connectionID })).status, 201);
      const got = [];
      const notifications = [];
      h.on("message", (m) => got.push(m.id));
      h.on("notification", (n) => notifications.push(n));
      const ids = [];
      for (let i = 0; i < 2; i++) ids.push((await post("/api/v1/messages", { topic, content: `m${i}` })).json.id);
      const deleted = next(h, "deleted");
      assert.equal(await h.deleteMessage(topic, ids[0]), null);
      const [one, frame] = await deleted;
      assert.deepEqual(one, { topic, id: ids[0] });
      assert.equal(frame.type, "deleted");
      assert.deepEqual(got, ids); // the messages came first
      await assert.rejects(h.deleteMessage(topic, ids[0]), (e) => e.status === 404 && e.code === "not_found");
      const gone = next(h, "deleted");
      assert.equal(await h.deleteTopic(topic), null);
      assert.deepEqual((await gone)[0], { topic, id: null });
      await assert.rejects(h.deleteTopic(topic), (e) => e.status === 404 && e.code === "not_found");
      await assert.rejects(h.topic(topic), (e) => e.status === 404);
      assert.deepEqual(notifications, []);
      const keyless = new Houston({ apiUrl: `http://127.0.0.1:${srv.api}`, autoConnect: false });
      await assert.rejects(keyless.deleteTopic(topic), (e) => e.status === 401);
    } finally {
      h.close();
    }
  });
});

// ---- timing rules, on a scripted WebSocket --------------------------------------

/** A manual clock: setTimeout/clearTimeout that run when advance() passes them. */
function manualClock() {
  let now = 0;
  let seq = 0;
  const timers = new Map();
  return {
    get now() {
      return now;
    },
    setTimeout(fn, ms) {
      const id = ++seq;
      timers.set(id, { at: now + ms, fn, ms });
      return id;
    },
    clearTimeout(id) {
      timers.delete(id);
    },
    pending: () => [...timers.values()],
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at);
        if (!due.length) break;
        const [id, t] = due[0];
        timers.delete(id);
        now = t.at;
        t.fn();
      }
      now = end;
    },
  };
}

/** A WebSocket stand-in: records what the client sends; the test plays the server. */
function scriptedSockets() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
    }
    send(data) {
      this.sent.push(JSON.parse(data));
    }
    close(code = 1005) {
      this.readyState = 3;
      queueMicrotask(() => this.onclose?.({ code, reason: "" }));
    }
    // the server's side
    open(frame) {
      this.readyState = 1;
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    deliver(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    drop(code = 1006) {
      this.readyState = 3;
      this.onclose?.({ code, reason: "" });
    }
  }
  return { FakeSocket, sockets };
}

const flush = () => new Promise((r) => setImmediate(r));

const ulid = (n) => `01M8KZ${String(n).padStart(20, "0")}`;
const msgFrame = (topic, n) => ({ type: "message", message: { id: ulid(n), topic, content: `c${n}`, author: "", createdAt: "" } });

describe("topic calls of the HTTP API", () => {
  let srv;
  before(async () => {
    srv = await startHouston(["--retention-count", "3", "--api-key", "js-key"]);
  });
  after(async () => {
    await stopHouston(srv);
  });

  test("topic, topics and setTopic against the server, with the API key", async () => {
    const h = new Houston({ apiUrl: `http://127.0.0.1:${srv.api}/`, apiKey: "js-key", autoConnect: false });
    const prefix = newTopic();
    const headers = { "Content-Type": "application/json", Authorization: "Bearer js-key" };
    for (const [t, n] of [[`${prefix}.a`, 2], [`${prefix}.b`, 5]])
      for (let i = 0; i < n; i++) {
        const r = await fetch(`http://127.0.0.1:${srv.api}/api/v1/messages`, {
          method: "POST", headers, body: JSON.stringify({ topic: t, content: `m${i}` }),
        });
        assert.equal(r.status, 201);
      }
    const set = await h.setTopic(`${prefix}.a`, { retentionAge: "7d", retentionCount: null });
    assert.equal(set.retentionAge, "7d");
    assert.deepEqual(set.overrides, ["retentionAge"]);
    assert.equal(set.retentionCount, 3);
    const deadline = Date.now() + 8000;
    let b;
    do {
      b = await h.topic(`${prefix}.b`);
      if (b.messages === 3) break;
      await sleep(100);
    } while (Date.now() < deadline);
    assert.equal(b.messages, 3);
    assert.ok(b.prunedID);
    const page1 = await h.topics({ prefix: `${prefix}.`, limit: 1 });
    assert.deepEqual(page1.topics.map((t) => t.topic), [`${prefix}.a`]);
    assert.equal(page1.next, `${prefix}.a`);
    const page2 = await h.topics({ prefix: `${prefix}.`, after: page1.next });
    assert.deepEqual(page2.topics.map((t) => t.topic), [`${prefix}.b`]);
    assert.equal(page2.next, null);
    await assert.rejects(h.topic(`${prefix}.none`), (e) => e.status === 404 && e.code === "not_found");
    await assert.rejects(h.setTopic(`${prefix}.a`, { retentionAge: "soon" }),
      (e) => e.status === 400 && /retentionAge/.test(e.message));
    const keyless = new Houston({ apiUrl: `http://127.0.0.1:${srv.api}`, autoConnect: false });
    await assert.rejects(keyless.topics(), (e) => e.status === 401);
    assert.throws(() => new Houston({ autoConnect: false }), TypeError);
    assert.throws(() => keyless.connect(), TypeError);
  });
});

describe("user calls of the HTTP API", () => {
  const SECRET = "js-user-secret-0123456789abcdef";
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const tokenFor = (sub) => {
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, iat: now, exp: now + 300 })}`;
    return `${input}.${createHmac("sha256", SECRET).update(input).digest("base64url")}`;
  };
  let srv;
  const clients = [];
  before(async () => {
    srv = await startHouston(["--jwt-secret", SECRET, "--api-key", "js-key"]);
  });
  after(async () => {
    for (const h of clients) h.close();
    await sleep(50);
    await stopHouston(srv);
  });

  test("notifyUser, userConnections and disconnectUser, with the API key", async () => {
    const backend = new Houston({ apiUrl: `http://127.0.0.1:${srv.api}`, apiKey: "js-key", autoConnect: false });
    const alice = `alice ${process.pid}/${Date.now()}`; // any sub: encoded in the path
    const bob = `bob-${process.pid}-${Date.now()}`;
    const as = (user) => {
      const h = new Houston({ url: `ws://127.0.0.1:${srv.ws}/api/v1/ws`, token: tokenFor(user), backoffBase: 50 });
      clients.push(h);
      return h;
    };
    const [a1, a2, b1] = [as(alice), as(alice), as(bob)];
    await Promise.all([next(a1, "connected"), next(a2, "connected"), next(b1, "connected")]);
    let page;
    const deadline = Date.now() + 5000;
    do {
      page = await backend.userConnections(alice);
      if (page.connections.length === 2) break;
      await sleep(20);
    } while (Date.now() < deadline);
    assert.deepEqual(page.connections.map((c) => c.id).sort(), [a1.connectionID, a2.connectionID].sort());
    assert.ok(page.connections.every((c) => c.user === alice));
    assert.equal(page.next, null);
    const first = await backend.userConnections(alice, { limit: 1 });
    assert.equal(first.connections.length, 1);
    assert.equal((await backend.userConnections(alice, { after: first.next })).connections.length, 1);

    const bobGot = [];
    b1.on("notification", (p) => bobGot.push(p));
    const notes = [next(a1, "notification"), next(a2, "notification")];
    assert.equal(await backend.notifyUser(alice, "for alice"), null);
    assert.deepEqual(await Promise.all(notes), [["for alice"], ["for alice"]]);
    await assert.rejects(backend.notifyUser(`nobody-${Date.now()}`, "x"),
      (e) => e.status === 404 && e.code === "not_found");

    const closed = [next(a1, "close"), next(a2, "close")];
    assert.equal(await backend.disconnectUser(alice), null);
    for (const [info] of await Promise.all(closed)) {
      assert.equal(info.code, 4000);
      assert.equal(info.willReconnect, false);
    }
    assert.deepEqual(await backend.userConnections(alice), { connections: [], next: null });
    assert.deepEqual(bobGot, []);
    assert.equal(b1.state, "open");

    const keyless = new Houston({ apiUrl: `http://127.0.0.1:${srv.api}`, autoConnect: false });
    await assert.rejects(keyless.disconnectUser(bob), (e) => e.status === 401);
  });
});

describe("timing rules", () => {
  test("backoff: full jitter under min(30 s, 250 ms * 2^n)", () => {
    for (let n = 0; n < 20; n++) {
      const ceiling = Math.min(30000, 250 * 2 ** n);
      assert.equal(backoffDelay(n, { random: () => 0 }), 0);
      assert.equal(backoffDelay(n, { random: () => 0.999999 }), Math.floor(0.999999 * ceiling));
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(n);
        assert.ok(d >= 0 && d < ceiling, `attempt ${n}: ${d}`);
      }
    }
    assert.equal(backoffDelay(3, { base: 100, cap: 500, random: () => 0.5 }), 250);
  });

  test("reconnect attempts wait the backoff, reset after a connected frame", async () => {
    const clock = manualClock();
    const { FakeSocket, sockets } = scriptedSockets();
    const h = new Houston({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, random: () => 1 - 1e-9, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
    const delays = [];
    h.on("reconnecting", ({ delay }) => delays.push(delay));
    await flush();
    sockets[0].open({ type: "connected", connectionID: ulid(1) });
    for (let i = 0; i < 9; i++) {
      sockets.at(-1).drop();
      const count = sockets.length;
      clock.advance(delays.at(-1) - 1);
      await flush();
      assert.equal(sockets.length, count, "not before the delay");
      clock.advance(1);
      await flush();
      assert.equal(sockets.length, count + 1, "right after the delay");
    }
    assert.deepEqual(delays, [249, 499, 999, 1999, 3999, 7999, 15999, 29999, 29999]);
    sockets.at(-1).open({ type: "connected", connectionID: ulid(2) });
    sockets.at(-1).drop();
    assert.equal(delays.at(-1), 249, "back to the base after a connection");
    h.close();
    assert.equal(h.state, "closed");
  });

  test("acks are batched: the highest id, at most every 500 ms", async () => {
    const clock = manualClock();
    const { FakeSocket, sockets } = scriptedSockets();
    const h = new Houston({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
    await flush();
    const ws = sockets[0];
    ws.open({ type: "connected", connectionID: ulid(1), resumeToken: "tok" });
    const acks = () => ws.sent.filter((f) => f.type === "ack");
    for (let n = 10; n < 20; n++) ws.deliver(msgFrame("a", n));
    assert.deepEqual(acks(), [], "none before the interval");
    clock.advance(499);
    assert.deepEqual(acks(), []);
    clock.advance(1);
    assert.deepEqual(acks(), [{ type: "ack", id: ulid(19) }]);
    // A steady stream: one ack per interval.
    for (let t = 0; t < 2000; t += 50) {
      ws.deliver(msgFrame("a", 100 + t));
      clock.advance(50);
    }
    assert.equal(acks().length, 1 + 4);
    assert.equal(acks().at(-1).id, ulid(100 + 1950));
    // Quiet: nothing more.
    clock.advance(5000);
    assert.equal(acks().length, 5);
    h.close();
  });

  test("no acks to a server without resume (it would answer unsupported)", async () => {
    const clock = manualClock();
    const { FakeSocket, sockets } = scriptedSockets();
    const h = new Houston({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
    await flush();
    sockets[0].open({ type: "connected", connectionID: ulid(1) });
    sockets[0].deliver(msgFrame("a", 5));
    clock.advance(1000);
    assert.deepEqual(sockets[0].sent, []);
    h.close();
  });

  test("resume URL, de-duplication per topic and the reset event", async () => {
    const clock = manualClock();
    const { FakeSocket, sockets } = scriptedSockets();
    const store = memoryLastIdStore();
    const h = new Houston({ url: "ws://x:1/api/v1/ws", token: "jwt", lastIdStore: store, WebSocket: FakeSocket, random: () => 0, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
    const got = [];
    const resets = [];
    h.on("message", (m) => got.push(`${m.topic}:${m.id}`));
    h.on("reset", (f) => resets.push(f));
    await flush();
    assert.equal(sockets[0].url, "ws://x:1/api/v1/ws?token=jwt");
    sockets[0].open({ type: "connected", connectionID: ulid(1), resumeToken: "r1" });
    h.subscribe("b").catch(() => {});
    sockets[0].deliver(msgFrame("a", 10));
    sockets[0].deliver(msgFrame("b", 11));
    sockets[0].deliver(msgFrame("a", 12));
    sockets[0].drop();
    clock.advance(0);
    await flush();
    const url = new URL(sockets[1].url);
    assert.equal(url.searchParams.get("resume"), "r1");
    assert.equal(url.searchParams.get("lastID"), ulid(12));
    assert.equal(url.searchParams.get("token"), "jwt");
    sockets[1].open({ type: "connected", connectionID: ulid(1), resumeToken: "r2", resumed: true, replayed: 2 });
    // A replay overlapping what was delivered: the repeats are dropped.
    sockets[1].deliver(msgFrame("a", 12));
    sockets[1].deliver(msgFrame("b", 11));
    sockets[1].deliver(msgFrame("b", 13));
    sockets[1].deliver(msgFrame("a", 9));
    assert.deepEqual(got, [`a:${ulid(10)}`, `b:${ulid(11)}`, `a:${ulid(12)}`, `b:${ulid(13)}`]);
    assert.deepEqual(resets, []);
    assert.equal(store.get(), ulid(13));
    // The token no longer resumes: a new connection, "reset", subscriptions renewed.
    sockets[1].drop();
    clock.advance(0);
    await flush();
    assert.equal(new URL(sockets[2].url).searchParams.get("resume"), "r2");
    sockets[2].open({ type: "connected", connectionID: ulid(3), resumeToken: "r3", resumed: false, replayed: 0 });
    assert.equal(resets.length, 1);
    assert.deepEqual(sockets[2].sent, [{ type: "subscribe", topic: "b" }]);
    assert.equal(h.connectionID, ulid(3));
    h.close();
  });

  test("close() sends 1000 and ends reconnecting", async () => {
    const clock = manualClock();
    const { FakeSocket, sockets } = scriptedSockets();
    const h = new Houston({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
    await flush();
    sockets[0].open({ type: "connected", connectionID: ulid(1) });
    let code = null;
    sockets[0].close = (c) => {
      code = c;
      sockets[0].drop(c);
    };
    h.close();
    assert.equal(code, 1000);
    clock.advance(60000);
    await flush();
    assert.equal(sockets.length, 1);
    assert.equal(h.state, "closed");
  });
});

describe("batch publish", () => {
  let srv;
  before(async () => {
    srv = await startHouston(["--api-key", "js-key", "--max-batch", "50"]);
  });
  after(async () => {
    await stopHouston(srv);
  });

  test("publishBatch stores in order, repeats with its key, names a bad element", async () => {
    const h = new Houston({ apiUrl: `http://127.0.0.1:${srv.api}`, apiKey: "js-key", autoConnect: false });
    const topic = newTopic();
    const messages = Array.from({ length: 50 }, (_, i) => ({ topic, content: `b${i}`, author: "js" }));
    const first = await h.publishBatch(messages, { idempotencyKey: `js-${topic}` });
    assert.deepEqual(first.messages.map((m) => m.content), messages.map((m) => m.content));
    const ids = first.messages.map((m) => m.id);
    assert.deepEqual([...ids].sort(), ids);
    const again = await h.publishBatch(messages, { idempotencyKey: `js-${topic}` });
    assert.deepEqual(again, first);
    await assert.rejects(h.publishBatch(messages.slice(1), { idempotencyKey: `js-${topic}` }),
      (e) => e.status === 422 && e.code === "idempotency_key_reused");
    const bad = messages.slice(0, 3).concat([{ topic: "no spaces allowed", content: "x" }]);
    await assert.rejects(h.publishBatch(bad),
      (e) => e.status === 400 && e.code === "invalid_field" && e.body.error.index === 3);
    await assert.rejects(h.publishBatch(messages.concat(messages.slice(0, 1))),
      (e) => e.status === 413 && e.code === "payload_too_large");
    const r = await fetch(`http://127.0.0.1:${srv.api}/api/v1/messages?topic=${topic}&limit=100`,
      { headers: { Authorization: "Bearer js-key" } });
    assert.equal((await r.json()).messages.length, 50);
  });
});
