// A hostile web page in the user's browser against a keyless houston
// (docs/security.md, threat model): the real binary, Debian's headless
// Chromium, a page served from another origin by a server of this test.
// The page tries what any site may do without asking: a text/plain POST, a
// Blob POST, a form POST, a WebSocket subscribe, and the same under a name
// that resolves to 127.0.0.1 (DNS rebinding). All are refused, nothing is
// published, nothing is received; the console on its own origin still
// connects. Run with
//   node --test tests/browser/hostile.spec.mjs
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import { after, before, test } from "node:test";

import { freePort, launchChromium, removeHouston, startHouston } from "./harness.mjs";

const TOPIC = "hostile-page";

let houston; // { proc, ws, api, dir, log }
let evil; // the other origin's server
let evilPort;
let browser;

async function history(topic) {
  const res = await fetch(`http://127.0.0.1:${houston.api}/api/v1/messages?topic=${topic}`);
  assert.equal(res.status, 200);
  return (await res.json()).messages;
}

before(async () => {
  houston = await startHouston([], "houston-hostile-");
  evilPort = await freePort();
  evil = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end("<!doctype html><title>a site you visited</title><iframe name=sink></iframe>");
  });
  await new Promise((r) => evil.listen(evilPort, "127.0.0.1", r));
  // rebind.test is the attacker's name, pointed at this machine
  browser = await launchChromium(["--host-resolver-rules=MAP rebind.test 127.0.0.1"]);
});

after(async () => {
  if (browser) await browser.close();
  if (evil) await new Promise((r) => evil.close(r));
  if (houston) await removeHouston(houston);
});

// What the page does, in the page: every attempt, and what it could see.
async function attack(page, apiBase, wsUrl, topic) {
  return page.evaluate(async ({ apiBase, wsUrl, topic }) => {
    const body = JSON.stringify({ topic, content: "from a hostile page" });
    const out = {};
    const tryFetch = async (name, init) => {
      try {
        const res = await fetch(`${apiBase}/api/v1/publish`, { method: "POST", mode: "no-cors", ...init });
        out[name] = `answered (opaque: ${res.type})`;
      } catch (e) {
        out[name] = `failed: ${e.message}`;
      }
    };
    await tryFetch("text/plain", { body, headers: { "Content-Type": "text/plain" } });
    await tryFetch("blob", { body: new Blob([body]) });
    // no-cors drops a Content-Type a page may not send cross-origin
    await tryFetch("json-no-cors", { body, headers: { "Content-Type": "application/json" } });
    // CORS mode: the preflight is not answered for this origin
    try {
      const res = await fetch(`${apiBase}/api/v1/publish`, { method: "POST", body, headers: { "Content-Type": "application/json" } });
      out.cors = `status ${res.status}`;
    } catch (e) {
      out.cors = `failed: ${e.message}`;
    }
    // A form: text/plain encoding shaped so the body is JSON.
    const form = document.createElement("form");
    form.method = "POST";
    form.enctype = "text/plain";
    form.action = `${apiBase}/api/v1/messages`;
    form.target = "sink";
    const input = document.createElement("input");
    input.name = `{"topic":"${topic}","content":"form","pad":"`;
    input.value = `"}`;
    form.appendChild(input);
    document.body.appendChild(form);
    const loaded = new Promise((r) => { document.querySelector("iframe").onload = r; setTimeout(r, 3000); });
    form.submit();
    await loaded;
    out.form = "submitted";
    // A WebSocket that would subscribe and read the topic.
    out.ws = await new Promise((resolve) => {
      const seen = [];
      let ws;
      try {
        ws = new WebSocket(wsUrl);
      } catch (e) {
        resolve({ opened: false, error: e.message, seen });
        return;
      }
      let opened = false;
      ws.onopen = () => { opened = true; ws.send(JSON.stringify({ type: "subscribe", topic })); };
      ws.onmessage = (e) => seen.push(e.data);
      ws.onerror = () => {};
      ws.onclose = (e) => resolve({ opened, code: e.code, seen });
      setTimeout(() => { try { ws.close(); } catch { /* closed */ } }, 3000);
    });
    return out;
  }, { apiBase, wsUrl, topic });
}

test("a page from another origin cannot publish, subscribe or read", { timeout: 60000 }, async () => {
  const page = await browser.newPage();
  page.setDefaultTimeout(10000);
  await page.goto(`http://127.0.0.1:${evilPort}/`);
  const seen = await attack(page, `http://127.0.0.1:${houston.api}`,
    `ws://127.0.0.1:${houston.ws}/api/v1/ws`, TOPIC);
  // A message published meanwhile by the real backend must not reach the page.
  assert.equal(seen.ws.opened, false, `the WebSocket opened: ${JSON.stringify(seen)}`);
  assert.deepEqual(seen.ws.seen, []);
  assert.match(seen.cors, /failed/);
  assert.deepEqual(await history(TOPIC), [], `published: ${JSON.stringify(seen)}`);
  const log = readFileSync(houston.log, "utf8");
  assert.match(log, /Origin "http:\/\/127\.0\.0\.1:\d+" not allowed/);
  await page.close();
});

test("the same under a rebinding name (rebind.test is 127.0.0.1)", { timeout: 60000 }, async () => {
  const page = await browser.newPage();
  page.setDefaultTimeout(10000);
  await page.goto(`http://rebind.test:${evilPort}/`);
  const seen = await attack(page, `http://rebind.test:${houston.api}`,
    `ws://rebind.test:${houston.ws}/api/v1/ws`, `${TOPIC}-rebind`);
  assert.equal(seen.ws.opened, false, JSON.stringify(seen));
  assert.deepEqual(await history(`${TOPIC}-rebind`), []);
  // The page at rebind.test:<ws port> itself - what a rebinding attack
  // reads once the name points here - gets 421, not the console.
  const res = await page.goto(`http://rebind.test:${houston.ws}/`);
  assert.equal(res.status(), 421);
  assert.match(await res.text(), /misdirected_request/);
  await page.close();
});

test("the console on its own origin still connects", { timeout: 60000 }, async () => {
  const page = await browser.newPage();
  page.setDefaultTimeout(10000);
  await page.goto(`http://127.0.0.1:${houston.ws}/`);
  await page.locator('#conn-state[data-state="open"]').waitFor();
  await page.close();
});
