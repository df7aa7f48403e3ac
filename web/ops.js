// houston console, the Operations and Topics tabs. Operations samples
// GET /api/v1/stats (the JSON twin of /metrics) every second, keeps the last
// 10 minutes in the page and draws them on canvases; rates come from counter
// deltas, latency percentiles from histogram bucket deltas, both per sample.
// Hot topics come from GET /api/v1/topics, scale-out nodes from
// GET /api/v1/nodes. Topics lists the topics and deletes them. Every API
// call goes through console.js's api() (its base URL and API key); user
// data goes into the page as text only.
(() => {
  "use strict";

  const C = window.houstonConsole;
  const $ = (id) => document.getElementById(id);
  const PERIOD_MS = 1000;
  const WINDOW_MS = 10 * 60 * 1000;
  const MIN_SPAN_MS = 60 * 1000;
  const HOT_EVERY = 2; // samples between two reads of the topic list
  const HOT_LIST = 200; // topics read (the first ones by name)
  const HOT_SHOWN = 10;

  // ---- tabs -------------------------------------------------------------------

  const TABS = [["tab-client", "view-client"], ["tab-ops", "view-ops"], ["tab-topics", "view-topics"]];
  const shown = { ops: false, topics: false };

  function showTab(tabId) {
    for (const [t, v] of TABS) {
      const on = t === tabId;
      $(t).setAttribute("aria-selected", String(on));
      $(t).tabIndex = on ? 0 : -1;
      $(v).hidden = !on;
    }
    if (tabId === "tab-ops") {
      startOps();
      drawAll();
    }
    if (tabId === "tab-topics" && !shown.topics) {
      shown.topics = true;
      listTopics("first");
    }
  }

  for (const [t] of TABS) {
    $(t).addEventListener("click", () => showTab(t));
    $(t).addEventListener("keydown", (ev) => {
      const i = TABS.findIndex(([id]) => id === t);
      const step = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = TABS[(i + step + TABS.length) % TABS.length][0];
      showTab(next);
      $(next).focus();
    });
  }

  // ---- what is sampled --------------------------------------------------------

  // kind: "gauge" (the value), "rate" (counter delta per second), "pct" (a
  // percentile of the histogram's observations during the sample, in ms).
  const SERIES = [
    { key: "conns", label: "connections", kind: "gauge", metric: "houston_connections", chart: "conns" },
    { key: "subs", label: "subscriptions", kind: "gauge", metric: "houston_subscriptions", chart: "conns" },
    { key: "pubRate", label: "publishes/s", kind: "rate", metric: "houston_messages_published_total", chart: "rates" },
    { key: "delRate", label: "deliveries/s", kind: "rate", metric: "houston_deliveries_total", chart: "rates" },
    { key: "delP50", label: "delivery p50", kind: "pct", q: 0.5, metric: "houston_publish_to_socket_seconds", chart: "dlat" },
    { key: "delP99", label: "delivery p99", kind: "pct", q: 0.99, metric: "houston_publish_to_socket_seconds", chart: "dlat" },
    { key: "pubP50", label: "publish p50", kind: "pct", q: 0.5, metric: "houston_publish_commit_seconds", chart: "plat" },
    { key: "pubP99", label: "publish p99", kind: "pct", q: 0.99, metric: "houston_publish_commit_seconds", chart: "plat" },
    { key: "slowRate", label: "slow-client disconnects/s", kind: "rate", metric: "houston_slow_client_disconnects_total", chart: "events" },
    { key: "resumeRate", label: "resumes/s", kind: "rate", metric: "houston_resumes_total", chart: "events" },
  ];
  const CHARTS = [
    { id: "conns", title: "Connections and subscriptions", unit: "" },
    { id: "rates", title: "Messages per second: published, delivered", unit: "/s" },
    { id: "dlat", title: "Delivery latency (message created → frame queued), p50 and p99", unit: "ms" },
    { id: "plat", title: "Publish latency (request → committed), p50 and p99", unit: "ms" },
    { id: "events", title: "Slow-client disconnects and resumes per second", unit: "/s" },
  ];
  const KPIS = ["conns", "subs", "pubRate", "delRate", "delP99", "pubP99"];
  const byKey = Object.fromEntries(SERIES.map((s) => [s.key, s]));

  const ops = {
    started: false,
    timer: null,
    samples: [], // { t, v: { key: number|null } }, oldest first, WINDOW_MS long
    prev: null, // the last /api/v1/stats answer
    count: 0,
    hot: { prev: null, at: 0 },
    mode: null, // "embedded" | "scale-out", from /api/v1/info
    nodes: new Map(), // node -> { connections, deliveries, beatAt, rate, intervalMs, gone }
  };

  // A percentile of the observations between two cumulative histograms, in
  // ms, interpolated inside its bucket; null when nothing was observed.
  function percentile(cur, prev, q) {
    if (!cur || !cur.buckets) return null;
    const d = cur.buckets.map((b, i) => b - (prev && prev.buckets ? prev.buckets[i] : 0));
    const total = d[d.length - 1];
    if (!(total > 0)) return null;
    const target = q * total;
    for (let i = 0; i < d.length; i++) {
      if (d[i] < target) continue;
      const lo = i === 0 ? 0 : cur.le[i - 1];
      if (i >= cur.le.length) return cur.le[cur.le.length - 1] * 1000; // +Inf: at least the top bound
      const below = i === 0 ? 0 : d[i - 1];
      const frac = d[i] > below ? (target - below) / (d[i] - below) : 1;
      return (lo + (cur.le[i] - lo) * frac) * 1000;
    }
    return null;
  }

  function valuesOf(stats, prev) {
    const m = stats.metrics;
    const p = prev ? prev.metrics : null;
    const dt = prev ? (stats.at - prev.at) / 1000 : 0;
    const v = {};
    for (const s of SERIES) {
      if (s.kind === "gauge") v[s.key] = m[s.metric] ?? null;
      else if (s.kind === "rate") {
        const delta = p && dt > 0 ? (m[s.metric] ?? 0) - (p[s.metric] ?? 0) : null;
        v[s.key] = delta === null || delta < 0 ? null : delta / dt; // < 0: the server restarted
      } else v[s.key] = p ? percentile(m[s.metric], p[s.metric], s.q) : null;
    }
    return v;
  }

  // ---- formatting -----------------------------------------------------------

  function fmt(value, unit) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    let text;
    if (unit === "ms") text = value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
    else if (Number.isInteger(value)) text = value.toLocaleString("en-US");
    else text = value >= 100 ? Math.round(value).toLocaleString("en-US") : value.toFixed(1);
    return unit === "ms" ? `${text} ms` : text;
  }
  const unitOf = (s) => (s.kind === "pct" ? "ms" : "");
  const ago = (ms) => (ms >= 60000 ? `${+(ms / 60000).toFixed(1)} min` : `${Math.round(ms / 1000)} s`);
  const clock = (t) => new Date(t).toTimeString().slice(0, 8);

  // ---- the page's parts -----------------------------------------------------

  const kpiEls = {};
  for (const key of KPIS) {
    const s = byKey[key];
    const tile = document.createElement("div");
    tile.className = "kpi";
    const label = C.span("kpi-label", s.label);
    const value = C.span("kpi-value", "—");
    value.dataset.series = key;
    tile.append(label, value);
    $("ops-kpis").append(tile);
    kpiEls[key] = value;
  }

  const charts = CHARTS.map((def) => {
    const fig = document.createElement("figure");
    fig.className = "chart card";
    const cap = document.createElement("figcaption");
    const title = C.span("chart-title", def.title);
    const legend = document.createElement("span");
    legend.className = "legend";
    cap.append(title, legend);
    const plot = document.createElement("div");
    plot.className = "plot";
    const canvas = document.createElement("canvas");
    canvas.tabIndex = 0;
    canvas.setAttribute("role", "img");
    canvas.dataset.chart = def.id;
    const tip = document.createElement("div");
    tip.className = "tip";
    tip.hidden = true;
    plot.append(canvas, tip);
    fig.append(cap, plot);
    $("ops-charts").append(fig);
    const series = SERIES.filter((s) => s.chart === def.id);
    const chart = { def, fig, legend, canvas, tip, series, hover: null, geometry: null };
    canvas.addEventListener("mousemove", (ev) => hoverAt(chart, ev.offsetX));
    canvas.addEventListener("mouseleave", () => { chart.hover = null; drawChart(chart); });
    canvas.addEventListener("blur", () => { chart.hover = null; drawChart(chart); });
    canvas.addEventListener("keydown", (ev) => {
      const n = ops.samples.length;
      if (!n || (ev.key !== "ArrowLeft" && ev.key !== "ArrowRight")) return;
      ev.preventDefault();
      const at = chart.hover === null ? n - 1 : chart.hover + (ev.key === "ArrowLeft" ? -1 : 1);
      chart.hover = Math.max(0, Math.min(n - 1, at));
      drawChart(chart);
    });
    return chart;
  });

  // The table toggle: the latest sample's numbers, their range over the
  // window, and the raw totals of /metrics they come from.
  const tableRows = {};
  for (const s of SERIES) {
    const tr = document.createElement("tr");
    tr.dataset.series = s.key;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = s.label;
    const cells = [0, 1, 2].map(() => document.createElement("td"));
    const from = document.createElement("td");
    const name = C.span("metric", s.metric);
    const raw = C.span("raw", "—");
    raw.dataset.metric = s.metric;
    from.append(name, " ", raw);
    tr.append(th, ...cells, from);
    $("ops-table").tBodies[0].append(tr);
    tableRows[s.key] = { now: cells[0], min: cells[1], max: cells[2], raw };
  }
  $("ops-table-toggle").addEventListener("click", () => {
    const wrap = $("ops-table-wrap");
    wrap.hidden = !wrap.hidden;
    $("ops-table-toggle").setAttribute("aria-pressed", String(!wrap.hidden));
    $("ops-table-toggle").textContent = wrap.hidden ? "Show the numbers" : "Hide the numbers";
  });

  // ---- drawing ----------------------------------------------------------------

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function drawChart(chart) {
    const { canvas, series } = chart;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const colors = [color("--series-a"), color("--series-b")];
    const samples = ops.samples;
    const now = samples.length ? samples[samples.length - 1].t : Date.now();
    // The x axis spans what was sampled: a minute at first, growing to 10.
    const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, samples.length ? now - samples[0].t : 0));
    const t0 = now - span;
    const left = 52, right = 10, top = 8, bottom = 20;
    const pw = w - left - right, ph = h - top - bottom;
    let max = 0;
    for (const s of samples) for (const se of series) if (s.v[se.key] > max) max = s.v[se.key];
    const ymax = niceMax(max);
    const x = (t) => left + ((t - t0) / span) * pw;
    const y = (v) => top + ph - (v / ymax) * ph;
    chart.geometry = { left, pw, t0, span };

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = color("--line");
    ctx.fillStyle = color("--muted");
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const f of [0, 0.5, 1]) {
      const yy = Math.round(y(f * ymax)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(w - right, yy);
      ctx.stroke();
      ctx.fillText(fmt(f * ymax, chart.def.unit === "ms" ? "ms" : ""), left - 6, yy);
    }
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    ctx.fillText(`−${ago(span)}`, left, top + ph + 5);
    ctx.textAlign = "center";
    ctx.fillText(`−${ago(span / 2)}`, left + pw / 2, top + ph + 5);
    ctx.textAlign = "right";
    ctx.fillText("now", w - right, top + ph + 5);

    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    series.forEach((se, i) => {
      // The first line is wider: where both are equal (deliveries =
      // publishes with one subscriber each) it shows on both sides.
      ctx.lineWidth = i === 0 ? 4 : 1.5;
      ctx.strokeStyle = colors[i % colors.length];
      ctx.fillStyle = colors[i % colors.length];
      ctx.beginPath();
      let pen = false, lone = null;
      for (const s of samples) {
        const v = s.v[se.key];
        if (v === null || v === undefined) { pen = false; continue; }
        if (pen) { ctx.lineTo(x(s.t), y(v)); lone = null; } else { ctx.moveTo(x(s.t), y(v)); lone = s; }
        pen = true;
      }
      ctx.stroke();
      if (lone) ctx.fillRect(x(lone.t) - 1.5, y(lone.v[se.key]) - 1.5, 3, 3);
    });

    const hover = chart.hover !== null ? samples[chart.hover] : null;
    if (hover) {
      ctx.strokeStyle = color("--muted");
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(Math.round(x(hover.t)) + 0.5, top);
      ctx.lineTo(Math.round(x(hover.t)) + 0.5, top + ph);
      ctx.stroke();
      series.forEach((se, i) => {
        const v = hover.v[se.key];
        if (v === null || v === undefined) return;
        ctx.fillStyle = colors[i % colors.length];
        ctx.beginPath();
        ctx.arc(x(hover.t), y(v), 3.5, 0, 2 * Math.PI);
        ctx.fill();
      });
      chart.tip.textContent = `${clock(hover.t)}  ` +
        series.map((se) => `${se.label} ${fmt(hover.v[se.key], unitOf(se))}`).join(" · ");
      chart.tip.hidden = false;
      const tx = Math.min(Math.max(x(hover.t) + 8, 0), Math.max(0, w - chart.tip.offsetWidth));
      chart.tip.style.left = `${tx}px`;
    } else {
      chart.tip.hidden = true;
    }

    // The legend and the canvas's text alternative: the latest values.
    const last = samples.length ? samples[samples.length - 1].v : {};
    chart.legend.replaceChildren(...series.map((se, i) => {
      const item = C.span("item", `${se.label} ${fmt(last[se.key], unitOf(se))}`);
      item.style.setProperty("--dot", colors[i % colors.length]);
      return item;
    }));
    canvas.setAttribute("aria-label", `${chart.def.title}, the last ${ago(span)}; now: ` +
      series.map((se) => `${se.label} ${fmt(last[se.key], unitOf(se))}`).join(", ") +
      ". Arrow keys move through the samples.");
  }

  function hoverAt(chart, px) {
    const g = chart.geometry;
    if (!g || !ops.samples.length) return;
    const t = g.t0 + ((px - g.left) / g.pw) * g.span;
    let best = 0;
    ops.samples.forEach((s, i) => { if (Math.abs(s.t - t) < Math.abs(ops.samples[best].t - t)) best = i; });
    chart.hover = best;
    drawChart(chart);
  }

  function drawAll() {
    if ($("view-ops").hidden) return;
    for (const c of charts) drawChart(c);
  }
  window.addEventListener("resize", drawAll);
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", drawAll);

  function renderNumbers(stats) {
    const samples = ops.samples;
    const last = samples[samples.length - 1].v;
    for (const key of KPIS) kpiEls[key].textContent = fmt(last[key], unitOf(byKey[key]));
    for (const s of SERIES) {
      const row = tableRows[s.key];
      let min = null, max = null;
      for (const x of samples) {
        const v = x.v[s.key];
        if (v === null || v === undefined) continue;
        min = min === null ? v : Math.min(min, v);
        max = max === null ? v : Math.max(max, v);
      }
      row.now.textContent = fmt(last[s.key], unitOf(s));
      row.min.textContent = fmt(min, unitOf(s));
      row.max.textContent = fmt(max, unitOf(s));
      const m = stats.metrics[s.metric];
      row.raw.textContent = m === undefined ? "—" : typeof m === "object" ? `count ${m.count}` : String(m);
      row.raw.dataset.value = m === undefined ? "" : String(typeof m === "object" ? m.count : m);
    }
    $("ops-table").dataset.at = String(stats.at);
  }

  // ---- sampling -----------------------------------------------------------------

  function startOps() {
    if (ops.started) return;
    ops.started = true;
    ops.timer = 0; // a tick is under way
    tick();
  }

  async function tick() {
    const began = Date.now();
    ops.count++;
    try {
      if (ops.mode === null) {
        const info = await C.api("GET", "/api/v1/info");
        ops.mode = info.mode;
        showMode();
      }
      const stats = await C.api("GET", "/api/v1/stats");
      const v = valuesOf(stats, ops.prev);
      ops.prev = stats;
      ops.samples.push({ t: stats.at, v });
      while (ops.samples.length && ops.samples[0].t < stats.at - WINDOW_MS) {
        ops.samples.shift();
        for (const c of charts) if (c.hover !== null) c.hover = c.hover > 0 ? c.hover - 1 : null;
      }
      renderNumbers(stats);
      drawAll();
      $("ops-state").textContent = `Sampled every second; the last at ${clock(stats.at)}; ` +
        `${ops.samples.length} samples kept (10 minutes at most).`;
      $("ops-state").dataset.kind = "ok";
      if (ops.count % HOT_EVERY === 1) await hotTopics();
      if (ops.mode === "scale-out") await nodes();
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        // The console's way: the key field is marked (api() did); sampling
        // waits for the key (or the base URL) to change, rather than
        // asking every second.
        $("ops-state").textContent = "These numbers need the API key: enter it above; sampling resumes then.";
        $("ops-state").dataset.kind = "error";
        ops.timer = null;
        return;
      }
      $("ops-state").textContent = `Sampling failed: ${e.message}`;
      $("ops-state").dataset.kind = "error";
    }
    ops.timer = setTimeout(tick, Math.max(100, PERIOD_MS - (Date.now() - began)));
  }

  for (const id of ["api-key", "api-base"]) {
    $(id).addEventListener("input", () => {
      if (!ops.started || ops.timer !== null) return;
      ops.mode = null; // another server, perhaps
      ops.timer = setTimeout(tick, 400);
    });
  }

  // ---- hot topics -----------------------------------------------------------

  // Publishes per second of a topic: the growth of its message count between
  // two reads (a topic held at its retention count shows its growth only
  // until the cap: docs/api.md says so).
  async function hotTopics() {
    const list = await C.api("GET", `/api/v1/topics?limit=${HOT_LIST}`);
    const at = Date.now();
    const prev = ops.hot.prev;
    const dt = prev ? (at - ops.hot.at) / 1000 : 0;
    const rows = list.topics.map((t) => {
      const before = prev ? prev.get(t.topic) : undefined;
      const rate = before === undefined || dt <= 0 ? null : Math.max(0, t.messages - before) / dt;
      return { ...t, rate };
    });
    ops.hot.prev = new Map(list.topics.map((t) => [t.topic, t.messages]));
    ops.hot.at = at;
    rows.sort((a, b) => (b.rate ?? -1) - (a.rate ?? -1) || b.subscribers - a.subscribers ||
      (a.topic < b.topic ? -1 : 1));
    const body = $("ops-hot").tBodies[0];
    body.replaceChildren(...rows.slice(0, HOT_SHOWN).map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.topic = t.topic;
      const name = document.createElement("td");
      name.append(C.span("topic", t.topic));
      const cells = [fmt(t.rate, ""), fmt(t.subscribers, ""), fmt(t.messages, "")].map((text) => {
        const td = document.createElement("td");
        td.textContent = text;
        return td;
      });
      cells[0].dataset.rate = t.rate === null ? "" : String(t.rate);
      tr.append(name, ...cells);
      return tr;
    }));
    $("ops-hot-note").textContent = list.next
      ? `Of the first ${HOT_LIST} topics by name (the Topics tab lists them all).`
      : rows.length ? "" : "No topics yet.";
  }

  // ---- nodes (scale-out) ------------------------------------------------------

  function showMode() {
    $("ops-mode").textContent = ops.mode === "scale-out"
      ? "Scale-out: the charts are this API process's own numbers (publishes, publish latency); " +
        "connections and deliveries are the notifiers' below, from their heartbeats in Redis."
      : "Embedded: one process serves everything; the charts are all of it.";
  }

  async function nodes() {
    const now = Date.now();
    const res = await C.api("GET", "/api/v1/nodes");
    const seen = new Set();
    for (const n of res.notifiers) {
      seen.add(n.node);
      const old = ops.nodes.get(n.node);
      const beatAt = n.heartbeatAt ? Date.parse(n.heartbeatAt) : null;
      let rate = old ? old.rate : null;
      if (old && beatAt && old.beatAt && beatAt > old.beatAt) {
        rate = Math.max(0, n.deliveries - old.deliveries) / ((beatAt - old.beatAt) / 1000);
      }
      // The age is the server's (from the heartbeat's TTL in Redis): no
      // clock of this page's in it. An expired beat ages on from the last.
      const expired = n.heartbeatAgeMs === null;
      const age = !expired ? n.heartbeatAgeMs : old && old.age !== null ? old.age + (now - old.seenAt) : null;
      ops.nodes.set(n.node, { connections: n.connections, deliveries: expired && old ? old.deliveries : n.deliveries,
        beatAt: beatAt || (old && old.beatAt), rate: expired ? null : rate,
        intervalMs: n.heartbeatMs || (old && old.intervalMs) || null, seenAt: now, age, gone: expired });
    }
    for (const [name, n] of ops.nodes) {
      if (seen.has(name)) continue;
      // Gone from the directory (a survivor removed it): its age grows on.
      n.gone = true;
      n.rate = null;
      if (n.age !== null) n.age += now - n.seenAt;
      n.seenAt = now;
    }
    const tbody = $("ops-nodes").tBodies[0];
    tbody.replaceChildren(...[...ops.nodes.keys()].sort().map((name) => {
      const n = ops.nodes.get(name);
      const late = n.gone || n.age === null || !n.intervalMs || n.age > 3 * n.intervalMs;
      const tr = document.createElement("tr");
      tr.dataset.node = name;
      tr.dataset.state = late ? "late" : "ok";
      if (late) tr.className = "late";
      const cells = [name, n.gone ? "—" : fmt(n.connections, ""), n.gone ? "—" : fmt(n.rate, ""),
        n.age === null ? "never" : `${(n.age / 1000).toFixed(1)} s ago${late ? " (late: over 3 beats)" : ""}`];
      tr.append(...cells.map((text) => {
        const td = document.createElement("td");
        td.textContent = text;
        return td;
      }));
      tr.title = late ? `${name}: no heartbeat for over 3 intervals of ${n.intervalMs} ms` : `${name}: beating`;
      return tr;
    }));
    // The deployment's totals over the nodes beating now.
    let conns = 0, rate = 0;
    for (const n of ops.nodes.values()) {
      if (n.gone) continue;
      conns += n.connections || 0;
      rate += n.rate || 0;
    }
    const total = document.createElement("tr");
    total.className = "total";
    total.append(...["all beating", fmt(conns, ""), fmt(rate, ""), ""].map((text) => {
      const td = document.createElement("td");
      td.textContent = text;
      return td;
    }));
    $("ops-nodes").tFoot.replaceChildren(total);
    $("ops-nodes").hidden = false;
    const cbody = $("ops-consumers").tBodies[0];
    cbody.replaceChildren(...res.consumers.map((c) => {
      const tr = document.createElement("tr");
      tr.dataset.consumer = c.consumer;
      const a = document.createElement("td");
      a.textContent = c.consumer;
      const b = document.createElement("td");
      b.textContent = c.partitions.length ? `${c.partitions.join(", ")} (${c.partitions.length} of ${res.partitions})` : "none";
      tr.append(a, b);
      return tr;
    }));
    $("ops-consumers").hidden = false;
  }

  // ---- the Topics tab -----------------------------------------------------------

  const topics = { after: null, next: null };

  function retentionText(t) {
    const age = !t.retentionAge || t.retentionAge === "0" ? "any age" : `up to ${t.retentionAge}`;
    const count = t.retentionCount ? `newest ${t.retentionCount.toLocaleString("en-US")}` : "any number";
    return `${age}, ${count}${t.overrides && t.overrides.length ? " (own)" : ""}`;
  }

  async function listTopics(which) {
    const prefix = $("topics-prefix").value.trim();
    const limit = Math.min(1000, Math.max(1, parseInt($("topics-limit").value, 10) || 20));
    const after = which === "next" ? topics.next : null;
    const q = new URLSearchParams({ limit: String(limit) });
    if (prefix) q.set("prefix", prefix);
    if (after) q.set("after", after);
    let page;
    try {
      page = await C.api("GET", `/api/v1/topics?${q}`);
    } catch (e) {
      C.fail("list topics", e);
      return;
    }
    topics.after = after;
    topics.next = page.next;
    const tbody = $("topics-table").tBodies[0];
    tbody.replaceChildren(...page.topics.map(topicRow));
    const n = page.topics.length;
    $("topics-info").textContent = n ? `${n} topic${n === 1 ? "" : "s"}${prefix ? ` starting with ${prefix}` : ""}` +
      `${after ? ` after ${after}` : ""}` : "no topics";
    $("topics-next").disabled = !page.next;
    $("topics-first").disabled = !after;
  }

  function topicRow(t) {
    const tr = document.createElement("tr");
    tr.dataset.topic = t.topic;
    const name = document.createElement("td");
    name.append(C.span("topic", t.topic));
    const td = (text) => { const c = document.createElement("td"); c.textContent = text; return c; };
    const actions = document.createElement("td");
    actions.className = "actions";
    const history = document.createElement("button");
    history.type = "button";
    history.className = "secondary small";
    history.textContent = "History";
    history.addEventListener("click", () => {
      $("hist-topic").value = t.topic;
      showTab("tab-client");
      $("hist-form").requestSubmit();
    });
    const del = C.confirmButton("Delete topic", `delete topic ${t.topic}: its history, settings and subscriptions`,
      async () => {
        try {
          await C.api("DELETE", `/api/v1/topics/${encodeURIComponent(t.topic)}`);
          tr.remove();
          C.setStatus(`Deleted topic ${t.topic}.`, "ok");
        } catch (e) {
          C.fail(`delete topic ${t.topic}`, e);
        }
      });
    del.classList.add("delete-topic");
    actions.append(history, del);
    tr.append(name, td(fmt(t.messages, "")), td(fmt(t.subscribers, "")), td(retentionText(t)),
      td(t.lastID || "—"), actions);
    tr.children[4].className = "id";
    return tr;
  }

  $("topics-form").addEventListener("submit", (ev) => { ev.preventDefault(); listTopics("first"); });
  $("topics-next").addEventListener("click", () => listTopics("next"));
  $("topics-first").addEventListener("click", () => listTopics("first"));
})();
