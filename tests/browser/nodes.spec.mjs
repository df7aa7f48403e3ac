// The Operations tab in the scale-out mode: one line per notifier node and
// the consumers with their partitions; a killed notifier's line turns red.
// Not run on its own: tests/e2e/test_console.py starts the roles (a
// throwaway Redis and MariaDB, a publisher, notifiers a and b with a short
// heartbeat, two consumers) and runs this file with
//   HOUSTON_OPS_WS      notifier a's WebSocket port (the page is served there)
//   HOUSTON_OPS_API     the publisher's API port
//   HOUSTON_OPS_KILL    the pid of notifier b, killed (SIGKILL) by this test
//   HOUSTON_OPS_BEAT_MS the notifiers' --heartbeat-interval in ms
//   HOUSTON_TEST_OUTPUT where operations-scaleout.png goes
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { apiCall as harnessApiCall, launchChromium } from "./harness.mjs";

const WS = process.env.HOUSTON_OPS_WS;
const API = process.env.HOUSTON_OPS_API;
const KILL = Number(process.env.HOUSTON_OPS_KILL);
const BEAT_MS = Number(process.env.HOUSTON_OPS_BEAT_MS);
const OUTPUT = process.env.HOUSTON_TEST_OUTPUT;
const SAMPLE_MS = 1000; // the page samples every second
// The page's request and its answer; more under the sanitizers (make sanitize
// runs test_console.py with an ASan build).
const SLACK_MS = process.env.HOUSTON_SANITIZED ? 2000 : 500;

let browser;

before(async () => {
  assert.ok(WS && API && KILL && BEAT_MS && OUTPUT, "run by tests/e2e/test_console.py");
  browser = await launchChromium();
});

after(async () => {
  if (browser) await browser.close();
});

const apiCall = (method, urlPath, body) => harnessApiCall(API, method, urlPath, body);

test("operations, scale-out: nodes, deliveries, consumers; a killed notifier turns red", { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, colorScheme: "light" });
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`http://127.0.0.1:${WS}/`);
  await page.fill("#api-base", `http://127.0.0.1:${API}`);
  await page.locator('#conn-state[data-state="open"]').waitFor();
  const connectionID = (await page.locator("#conn-id").textContent()).trim();
  await apiCall("POST", "/api/v1/subscribes", { topic: "ops-scale", connectionID });
  await page.click("#tab-ops");

  // Both nodes beating; a has the page's connection.
  const line = (node) => page.locator(`#ops-nodes tbody tr[data-node="${node}"]`);
  await line("a").and(page.locator('[data-state="ok"]')).waitFor();
  await line("b").and(page.locator('[data-state="ok"]')).waitFor();
  assert.match(await page.locator("#ops-mode").textContent(), /Scale-out/);
  await page.waitForFunction(() => {
    const tr = document.querySelector('#ops-nodes tbody tr[data-node="a"]');
    return tr && Number(tr.children[1].textContent) >= 1;
  });

  // Deliveries per second on a, from its heartbeats, while publishing.
  let on = true;
  const load = (async () => {
    for (let i = 0; on; i++) {
      await apiCall("POST", "/api/v1/messages", { topic: "ops-scale", content: `m${i}` });
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    await page.waitForFunction(() => {
      const tr = document.querySelector('#ops-nodes tbody tr[data-node="a"]');
      return tr && parseFloat(tr.children[2].textContent) > 0;
    });
  } finally {
    on = false;
    await load;
  }

  // The consumers hold every partition between them.
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#ops-consumers tbody tr")];
    const held = rows.flatMap((tr) => (tr.children[1].textContent.match(/^[0-9, ]+/) || [""])[0]
      .split(",").map((s) => s.trim()).filter(Boolean));
    return rows.length === 2 && held.length === 16 && new Set(held).size === 16;
  });
  const nodes = await apiCall("GET", "/api/v1/nodes");
  assert.deepEqual(nodes.notifiers.map((n) => n.node), ["a", "b"]);
  assert.equal(nodes.partitions, 16);
  for (const n of nodes.notifiers) {
    assert.equal(n.heartbeatMs, BEAT_MS);
    assert.ok(n.heartbeatAgeMs >= 0 && n.heartbeatAgeMs <= 3 * BEAT_MS, JSON.stringify(n));
    assert.equal(n.late, false);
  }

  // kill -9 b: its line is red within three heartbeats (its beat expires
  // in Redis 3 beats after the last) and one sample of the page.
  process.kill(KILL, "SIGKILL");
  const killed = Date.now();
  await line("b").and(page.locator('[data-state="late"]')).waitFor({ timeout: 3 * BEAT_MS + SAMPLE_MS + SLACK_MS + 2000 });
  const red = Date.now() - killed;
  console.log(`# notifier b red ${red} ms after the kill (heartbeat ${BEAT_MS} ms)`);
  assert.ok(red <= 3 * BEAT_MS + SAMPLE_MS + SLACK_MS, `red after ${red} ms`);
  assert.equal(await line("b").evaluate((tr) => getComputedStyle(tr.children[0]).color), "rgb(194, 54, 43)");
  assert.equal(await line("a").getAttribute("data-state"), "ok");
  // It stays red once a survivor removed it from the directory.
  await page.waitForTimeout(3 * BEAT_MS);
  assert.equal(await line("b").getAttribute("data-state"), "late");
  assert.equal(await line("a").getAttribute("data-state"), "ok");

  mkdirSync(OUTPUT, { recursive: true });
  await page.screenshot({ path: path.join(OUTPUT, "operations-scaleout.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});
