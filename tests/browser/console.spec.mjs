// The web console end to end: the real houston binary, Debian's headless
// Chromium driven by playwright-core, no mocks. Run with
//   node --test tests/browser/console.spec.mjs
// (HOUSTON_BIN: the binary, default build/houston; HOUSTON_TEST_OUTPUT: where
// console.png goes, default build/test-output).
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { OUTPUT, apiCall as harnessApiCall, launchChromium, removeHouston, startHouston, stopHouston } from "./harness.mjs";

const TOPIC = "console-test";
const OTHER = "console-other";

let server; // { proc, ws, api, dir, log }
let browser;

const apiCall = (method, urlPath, body) => harnessApiCall(server.api, method, urlPath, body);

const publish = (topic, content, author = "outside") =>
  apiCall("POST", "/api/v1/messages", { topic, content, author });

before(async () => {
  server = await startHouston();
  browser = await launchChromium();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await removeHouston(server);
});

test("console: connect, subscribe, publish, watch, unsubscribe, page history", { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
  page.setDefaultTimeout(10000);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  const authHeaders = [];
  page.on("request", (r) => {
    if (r.url().startsWith(`http://127.0.0.1:${server.api}/`)) authHeaders.push(r.headers().authorization ?? null);
  });

  await page.goto(`http://127.0.0.1:${server.ws}/`);
  assert.equal(await page.title(), "houston console");

  // Connected on load: state and connectionID shown.
  await page.locator('#conn-state[data-state="open"]').waitFor();
  const connId = (await page.locator("#conn-id").textContent()).trim();
  assert.match(connId, /^[0-9A-HJKMNP-TV-Z]{26}$/);

  // The API base defaults to this host on port 9002; point it at our port.
  assert.equal(await page.inputValue("#api-base"), "http://127.0.0.1:9002");
  await page.fill("#api-base", `http://127.0.0.1:${server.api}`);

  // Reconnect gives a new connection id.
  await page.click("#connect");
  await page.locator('#conn-state[data-state="open"]').waitFor();
  await page.waitForFunction((old) => {
    const t = document.getElementById("conn-id").textContent.trim();
    return t.length === 26 && t !== old;
  }, connId);
  const connectionID = (await page.locator("#conn-id").textContent()).trim();

  // Subscribe (through the API, with CORS), seen by the server.
  await page.fill("#sub-topic", TOPIC);
  await page.click("#subscribe");
  await page.locator(`#subs li[data-topic="${TOPIC}"]`).waitFor();
  let subs = await apiCall("GET", `/api/v1/subscribes?connectionID=${connectionID}`);
  assert.deepEqual(subs.map((s) => s.topic), [TOPIC]);

  // Publish from the page; markup in content must stay text.
  const fromPage = "hello from the page <b>not bold</b>";
  await page.fill("#pub-topic", TOPIC);
  await page.fill("#pub-author", "browser");
  await page.fill("#pub-content", fromPage);
  await page.click("#publish");
  const pageMsg = page.locator("#live li.msg", { hasText: "hello from the page" });
  await pageMsg.waitFor();
  assert.equal(await pageMsg.locator(".content").textContent(), fromPage);
  assert.equal(await page.locator("#live b").count(), 0, "content was rendered as HTML");
  assert.equal(await pageMsg.locator(".author").textContent(), "browser");
  assert.equal(await pageMsg.locator(".topic").textContent(), TOPIC);

  // Publish from outside: it arrives too, on top.
  const outside = await publish(TOPIC, "hello from outside");
  await page.locator(`#live li.msg[data-id="${outside.id}"]`).waitFor();
  assert.equal(await page.locator("#live li.msg").first().getAttribute("data-id"), outside.id);
  assert.equal(await page.locator("#live li.msg").count(), 2);
  assert.equal(await page.locator("#live-count").textContent(), "2");

  // Unsubscribe: gone from the page and from the server; a later message of
  // that topic does not arrive (checked against one of another topic that
  // does, published after it: per-process delivery is in publish order).
  await page.click(`#subs li[data-topic="${TOPIC}"] button.unsubscribe`);
  await page.locator(`#subs li[data-topic="${TOPIC}"]`).waitFor({ state: "detached" });
  subs = await apiCall("GET", `/api/v1/subscribes?connectionID=${connectionID}`);
  assert.deepEqual(subs, []);
  await page.fill("#sub-topic", OTHER);
  await page.click("#subscribe");
  await page.locator(`#subs li[data-topic="${OTHER}"]`).waitFor();
  const missed = await publish(TOPIC, "after unsubscribe");
  const other = await publish(OTHER, "on the other topic");
  await page.locator(`#live li.msg[data-id="${other.id}"]`).waitFor();
  assert.equal(await page.locator(`#live li.msg[data-id="${missed.id}"]`).count(), 0);

  // History: 12 messages in TOPIC, pages of 5, newest first.
  const ids = [];
  for (const m of await apiCall("GET", `/api/v1/messages?topic=${TOPIC}&limit=100&forward=true`).then((p) => p.messages)) ids.push(m.id);
  for (let i = ids.length; i < 12; i++) ids.push((await publish(TOPIC, `history ${i}`, "history")).id);
  const newestFirst = [...ids].reverse();
  const shown = () => page.$$eval("#history li.msg", (lis) => lis.map((li) => li.dataset.id));
  const waitShown = (first) => page.locator(`#history li.msg[data-id="${first}"]`).first().waitFor();

  // The API key field: sent as a Bearer token when filled, never stored.
  await page.fill("#api-key", "secret-test-key");
  await page.fill("#hist-topic", TOPIC);
  await page.fill("#hist-limit", "5");
  authHeaders.length = 0;
  await page.click("#hist-latest");
  await waitShown(newestFirst[0]);
  assert.deepEqual(await shown(), newestFirst.slice(0, 5));
  assert.deepEqual(authHeaders.filter((h) => h !== null), ["Bearer secret-test-key"]);
  const stored = await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie);
  assert.ok(!stored.includes("secret-test-key"), "the API key was stored");
  await page.fill("#api-key", "");
  assert.ok(await page.locator("#hist-newer").isDisabled());

  await page.click("#hist-older");
  await waitShown(newestFirst[5]);
  assert.deepEqual(await shown(), newestFirst.slice(5, 10));
  await page.click("#hist-older");
  await waitShown(newestFirst[10]);
  assert.deepEqual(await shown(), newestFirst.slice(10, 12));
  assert.ok(await page.locator("#hist-older").isDisabled(), "no older page after the oldest");
  await page.click("#hist-newer");
  await waitShown(newestFirst[5]);
  assert.deepEqual(await shown(), newestFirst.slice(5, 10));
  await page.click("#hist-newer");
  await waitShown(newestFirst[0]);
  assert.deepEqual(await shown(), newestFirst.slice(0, 5));
  assert.ok(await page.locator("#hist-newer").isDisabled(), "no newer page after the newest");

  // Live list as a user would leave it, for the screenshot.
  await publish(OTHER, "Multi-line content\nkeeps its line breaks and is shown as text.", "alice");
  await page.locator("#live li.msg").nth(2).waitFor();
  mkdirSync(OUTPUT, { recursive: true });
  await page.screenshot({ path: path.join(OUTPUT, "console.png"), fullPage: true });

  assert.deepEqual(problems, []);
  await page.close();

  // A clean shutdown with the page's connection still open (exit 0; under
  // the sanitizers, no leak report).
  const code = await stopHouston(server);
  assert.equal(code, 0, `houston exited with ${code}:\n${readFileSync(server.log, "utf8")}`);
});
