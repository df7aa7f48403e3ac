// houston console: one WebSocket to this page's origin (the notifier port),
// JSON calls to the API port. No framework, no build step. User data is only
// ever put into the page with textContent, never as HTML.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const LIVE_MAX = 500; // entries kept in the live list

  const el = {
    state: $("conn-state"), connId: $("conn-id"), connect: $("connect"), disconnect: $("disconnect"),
    apiBase: $("api-base"), apiKey: $("api-key"), apiKeyLabel: $("api-key-label"), status: $("status"),
    subForm: $("sub-form"), subTopic: $("sub-topic"), subs: $("subs"), subsEmpty: $("subs-empty"),
    pubForm: $("pub-form"), pubTopic: $("pub-topic"), pubAuthor: $("pub-author"),
    pubContent: $("pub-content"), pubResult: $("pub-result"),
    histForm: $("hist-form"), histTopic: $("hist-topic"), histLimit: $("hist-limit"),
    histNewer: $("hist-newer"), histOlder: $("hist-older"), histInfo: $("hist-info"), history: $("history"),
    live: $("live"), liveEmpty: $("live-empty"), liveCount: $("live-count"), liveClear: $("live-clear"),
  };

  // The API key is read from its input for each request and never stored
  // (no localStorage, no cookie): it is gone when the page is closed.
  const state = {
    ws: null,
    connectionID: null,
    topics: new Set(), // subscribed topics, re-subscribed after a reconnect
    liveCount: 0,
    hist: { topic: "", newest: null, oldest: null, older: false, newer: false },
  };

  // ---- helpers ------------------------------------------------------------

  function setStatus(text, kind) {
    el.status.textContent = text || "";
    el.status.dataset.kind = kind || "info";
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || `HTTP ${status}`);
      this.status = status;
      this.code = code;
    }
  }

  function apiBase() {
    return el.apiBase.value.trim().replace(/\/+$/, "");
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const key = el.apiKey.value.trim();
    if (key) headers.Authorization = `Bearer ${key}`;
    let res;
    try {
      res = await fetch(apiBase() + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store", credentials: "omit",
      });
    } catch (e) {
      throw new ApiError(0, "network", `cannot reach the API at ${apiBase()} (${e.message}): ` +
        "check the API base URL, and that the server allows this page's origin (--cors-origins)");
    }
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch { data = null; }
    }
    if (!res.ok) {
      const err = data && data.error ? data.error : {};
      if (res.status === 401 || res.status === 403) {
        el.apiKeyLabel.classList.add("wanted");
        el.apiKey.focus();
      }
      const text = res.status === 401 && !key ? "this server wants an API key" : err.message || res.statusText;
      throw new ApiError(res.status, err.code, `${res.status} ${err.code || ""}: ${text}`);
    }
    el.apiKeyLabel.classList.remove("wanted");
    return data;
  }

  function fail(what, e) {
    setStatus(`${what}: ${e.message}`, "error");
  }

  // Local time with milliseconds; the date too when it is not today.
  function formatTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso || "";
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    if (d.toDateString() === new Date().toDateString()) return time;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }

  function span(cls, text, title) {
    const s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    if (title) s.title = title;
    return s;
  }

  // One message as a list item; every field goes in as text.
  function messageItem(m) {
    const li = document.createElement("li");
    li.className = "msg";
    li.dataset.id = m.id || "";
    li.dataset.topic = m.topic || "";
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.append(
      span("topic", m.topic || ""),
      span("author", m.author ? m.author : "anonymous"),
      span("time", formatTime(m.createdAt), m.createdAt),
      span("id", m.id || ""),
    );
    if (!m.author) meta.querySelector(".author").classList.add("none");
    const content = document.createElement("div");
    content.className = "content";
    content.textContent = m.content ?? "";
    li.append(meta, content);
    return li;
  }

  // ---- connection ---------------------------------------------------------

  function setConnState(s) {
    el.state.textContent = s;
    el.state.dataset.state = s;
    el.connect.textContent = state.connectionID === null && s === "closed" ? "Connect" : "Reconnect";
    el.disconnect.disabled = s === "closed";
    for (const b of el.subs.querySelectorAll("button.unsubscribe")) b.disabled = s !== "open";
  }

  function connect() {
    if (state.ws) {
      const old = state.ws;
      state.ws = null;
      old.close(1000, "reconnect");
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/ws`);
    state.ws = ws;
    el.connId.textContent = "—";
    setConnState("connecting");
    ws.onmessage = (ev) => {
      if (ws !== state.ws) return;
      let frame = null;
      try { frame = JSON.parse(ev.data); } catch { frame = null; }
      if (frame && frame.type === "connected") {
        state.connectionID = frame.connectionID;
        el.connId.textContent = frame.connectionID;
        setConnState("open");
        setStatus("Connected.", "ok");
        resubscribe();
      } else if (frame && frame.type === "message" && frame.message) {
        addLive(messageItem(frame.message));
      } else if (frame && frame.type === "deleted") {
        // A message deleted through the API: struck out where it is shown.
        for (const li of document.querySelectorAll("li.msg")) {
          if (li.dataset.id === frame.id && li.dataset.topic === frame.topic) li.classList.add("deleted");
        }
      } else if (frame && frame.type === "error") {
        setStatus(`server: ${frame.message || frame.code}`, "error");
      } else {
        // A notification: the posted payload, as is.
        const li = messageItem({ topic: "notification", content: String(ev.data), createdAt: new Date().toISOString() });
        li.classList.add("notification");
        addLive(li);
      }
    };
    ws.onclose = (ev) => {
      if (ws !== state.ws) return;
      state.ws = null;
      setConnState("closed");
      setStatus(`Connection closed (${ev.code}${ev.reason ? ": " + ev.reason : ""}).`, ev.code === 1000 ? "info" : "error");
    };
    ws.onerror = () => {
      if (ws === state.ws) setStatus("WebSocket error.", "error");
    };
  }

  function disconnect() {
    if (!state.ws) return;
    state.ws.close(1000, "bye");
  }

  // ---- subscriptions --------------------------------------------------------

  function renderSubs() {
    el.subs.replaceChildren();
    for (const topic of [...state.topics].sort()) {
      const li = document.createElement("li");
      li.dataset.topic = topic;
      const name = span("topic", topic);
      const history = document.createElement("button");
      history.type = "button";
      history.className = "secondary small";
      history.textContent = "History";
      history.addEventListener("click", () => { el.histTopic.value = topic; loadHistory("latest"); });
      const unsub = document.createElement("button");
      unsub.type = "button";
      unsub.className = "unsubscribe danger small";
      unsub.textContent = "Unsubscribe";
      unsub.disabled = !state.ws || state.ws.readyState !== WebSocket.OPEN;
      unsub.addEventListener("click", () => unsubscribe(topic));
      li.append(name, history, unsub);
      el.subs.append(li);
    }
    el.subsEmpty.hidden = state.topics.size > 0;
  }

  async function subscribe(topic) {
    if (!state.connectionID || !state.ws) {
      setStatus("Connect first.", "error");
      return;
    }
    try {
      await api("POST", "/api/v1/subscribes", { topic, connectionID: state.connectionID });
      state.topics.add(topic);
      renderSubs();
      setStatus(`Subscribed to ${topic}.`, "ok");
      if (!el.pubTopic.value) el.pubTopic.value = topic;
      if (!el.histTopic.value) el.histTopic.value = topic;
    } catch (e) {
      fail(`subscribe ${topic}`, e);
    }
  }

  async function unsubscribe(topic) {
    try {
      await api("DELETE", "/api/v1/subscribes", { topic, connectionID: state.connectionID });
      state.topics.delete(topic);
      renderSubs();
      setStatus(`Unsubscribed from ${topic}.`, "ok");
    } catch (e) {
      fail(`unsubscribe ${topic}`, e);
    }
  }

  // A new connection has no subscriptions: make the old ones again.
  async function resubscribe() {
    for (const topic of state.topics) {
      try {
        await api("POST", "/api/v1/subscribes", { topic, connectionID: state.connectionID });
      } catch (e) {
        state.topics.delete(topic);
        fail(`re-subscribe ${topic}`, e);
      }
    }
    renderSubs();
  }

  // ---- live list ------------------------------------------------------------

  function addLive(li) {
    el.live.prepend(li);
    while (el.live.childElementCount > LIVE_MAX) el.live.lastElementChild.remove();
    state.liveCount++;
    el.liveCount.textContent = String(state.liveCount);
    el.liveEmpty.hidden = true;
  }

  // ---- publish ------------------------------------------------------------

  async function publish() {
    const body = { topic: el.pubTopic.value.trim(), content: el.pubContent.value };
    const author = el.pubAuthor.value.trim();
    if (author) body.author = author;
    el.pubResult.textContent = "";
    try {
      const m = await api("POST", "/api/v1/messages", body);
      el.pubResult.textContent = `published ${m.id}`;
      el.pubContent.value = "";
      el.pubContent.focus();
      setStatus(`Published to ${m.topic}.`, "ok");
    } catch (e) {
      fail("publish", e);
    }
  }

  // ---- history ------------------------------------------------------------

  // "latest": the newest page; "older": before the oldest shown; "newer":
  // after the newest shown. Pages are shown newest first.
  async function loadHistory(which) {
    const h = state.hist;
    const topic = which === "latest" ? el.histTopic.value.trim() : h.topic;
    const limit = Math.min(1000, Math.max(1, parseInt(el.histLimit.value, 10) || 10));
    const q = new URLSearchParams({ topic, limit: String(limit) });
    if (which === "older") q.set("lastID", h.oldest);
    if (which === "newer") { q.set("lastID", h.newest); q.set("forward", "true"); }
    let page;
    try {
      page = await api("GET", `/api/v1/messages?${q}`);
    } catch (e) {
      fail(`history of ${topic}`, e);
      return;
    }
    let messages = page.messages || [];
    if (which === "newer") messages = messages.reverse();
    if (messages.length === 0 && which !== "latest") {
      // Nothing further that way: keep the page, say so.
      if (which === "older") h.older = false;
      else h.newer = false;
      el.histInfo.textContent = which === "newer" ? "no newer messages" : "no older messages";
      updatePager();
      return;
    }
    h.topic = topic;
    el.history.replaceChildren(...messages.map(historyItem));
    h.newest = messages.length ? messages[0].id : null;
    h.oldest = messages.length ? messages[messages.length - 1].id : null;
    // page.next is set when more remain in the direction walked.
    if (which === "newer") {
      h.older = true;
      h.newer = page.next != null;
    } else {
      h.older = page.next != null;
      h.newer = which === "older";
    }
    const n = messages.length;
    el.histInfo.textContent = n
      ? `${topic}: ${n} message${n === 1 ? "" : "s"}${h.newer ? "" : " (latest)"}`
      : `${topic}: no messages`;
    updatePager();
  }

  // A button that asks once more before it acts: the first click arms it
  // (for 4 s), the second runs act. No modal dialog: keyboard and tests
  // reach it like any button.
  function confirmButton(label, title, act) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "danger small";
    b.textContent = label;
    b.title = title;
    let timer = null;
    b.addEventListener("click", async () => {
      if (!b.classList.contains("armed")) {
        b.classList.add("armed");
        b.textContent = "Confirm";
        b.setAttribute("aria-label", `confirm: ${title}`);
        timer = setTimeout(() => {
          b.classList.remove("armed");
          b.textContent = label;
          b.removeAttribute("aria-label");
        }, 4000);
        return;
      }
      clearTimeout(timer);
      b.disabled = true;
      try {
        await act();
      } finally {
        b.disabled = false;
        b.classList.remove("armed");
        b.textContent = label;
      }
    });
    return b;
  }

  // A history entry, with its delete button (DELETE /api/v1/messages/{id}).
  function historyItem(m) {
    const li = messageItem(m);
    const del = confirmButton("Delete", `delete message ${m.id} of ${m.topic}`, async () => {
      try {
        await api("DELETE", `/api/v1/messages/${encodeURIComponent(m.id)}?topic=${encodeURIComponent(m.topic)}`);
        li.remove();
        setStatus(`Deleted message ${m.id} of ${m.topic}.`, "ok");
      } catch (e) {
        fail(`delete message ${m.id}`, e);
      }
    });
    del.classList.add("delete");
    li.querySelector(".meta").append(del);
    return li;
  }

  function updatePager() {
    el.histOlder.disabled = !state.hist.older || !state.hist.oldest;
    el.histNewer.disabled = !state.hist.newer || !state.hist.newest;
  }

  // ---- wiring ---------------------------------------------------------------

  const defaultBase = `${location.protocol}//${location.hostname.includes(":") && !location.hostname.startsWith("[")
    ? `[${location.hostname}]` : location.hostname}:9002`;
  el.apiBase.value = defaultBase;

  el.connect.addEventListener("click", connect);
  el.disconnect.addEventListener("click", disconnect);
  el.subForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const topic = el.subTopic.value.trim();
    if (topic) subscribe(topic).then(() => { if (state.topics.has(topic)) el.subTopic.value = ""; });
  });
  el.pubForm.addEventListener("submit", (ev) => { ev.preventDefault(); publish(); });
  el.pubContent.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); el.pubForm.requestSubmit(); }
  });
  el.histForm.addEventListener("submit", (ev) => { ev.preventDefault(); loadHistory("latest"); });
  el.histOlder.addEventListener("click", () => loadHistory("older"));
  el.histNewer.addEventListener("click", () => loadHistory("newer"));
  el.liveClear.addEventListener("click", () => {
    el.live.replaceChildren();
    state.liveCount = 0;
    el.liveCount.textContent = "0";
    el.liveEmpty.hidden = false;
  });

  renderSubs();
  connect();

  // What ops.js (the Operations and Topics tabs) shares with this file.
  window.houstonConsole = { api, setStatus, fail, formatTime, span, confirmButton };
})();
