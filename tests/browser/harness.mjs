// What the browser specs share: the paths, a free port, houston started on
// two free loopback ports with a fresh SQLite file and stopped again, the
// headless Chromium they drive, and an API call that must succeed.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BIN = process.env.HOUSTON_BIN || path.join(ROOT, "build", "houston");
export const OUTPUT = process.env.HOUSTON_TEST_OUTPUT || path.join(ROOT, "build", "test-output");

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// `houston serve` with extra flags; resolves once both ports answer /healthz.
// { proc, ws, api, dir, log, exited() }: exited() is the exit code, the
// signal's name, or null while it runs.
export async function startHouston(extra = [], prefix = "houston-browser-") {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const [ws, api] = [await freePort(), await freePort()];
  const log = path.join(dir, "houston.log");
  const proc = spawn(BIN, ["serve", "--ws-addr", `127.0.0.1:${ws}`, "--api-addr", `127.0.0.1:${api}`,
    "--db", `sqlite:${path.join(dir, "houston.db")}`, ...extra], { stdio: ["ignore", "ignore", openSync(log, "w")] });
  let exited = null;
  proc.on("exit", (code, signal) => { exited = code ?? signal; });
  const deadline = Date.now() + 10000;
  for (;;) {
    if (exited !== null) throw new Error(`houston exited with ${exited}:\n${readFileSync(log, "utf8")}`);
    try {
      const [a, b] = await Promise.all([fetch(`http://127.0.0.1:${ws}/healthz`), fetch(`http://127.0.0.1:${api}/healthz`)]);
      if (a.ok && b.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`houston did not start:\n${readFileSync(log, "utf8")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, ws, api, dir, log, exited: () => exited };
}

// SIGTERM, then the exit code (or the name of the signal that killed it).
export async function stopHouston(server) {
  if (server.exited() === null) {
    const done = new Promise((r) => server.proc.once("exit", r));
    server.proc.kill("SIGTERM");
    await done;
  }
  return server.exited();
}

// Stops it and removes its directory.
export async function removeHouston(server) {
  await stopHouston(server);
  rmSync(server.dir, { recursive: true, force: true });
}

// Debian's Chromium, headless. The flags keep it off the network it has no
// business with (this machine's is closed; each refused connection is noise
// and delay).
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", ...extraArgs],
  });
}

// One API request on 127.0.0.1:api that must answer 2xx; its JSON or null.
export async function apiCall(api, method, urlPath, body) {
  const res = await fetch(`http://127.0.0.1:${api}${urlPath}`, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${urlPath}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
