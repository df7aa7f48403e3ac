#!/usr/bin/env python3
"""Writes an upgrade fixture: a database as a given houston binary leaves it
(tests/e2e/test_upgrade.py opens it with the current one; docs/operations.md,
"Upgrading").

    scripts/make-upgrade-fixture.py BIN OUTDIR

OUTDIR gets
  houston.db      the SQLite file of `BIN serve` (checkpointed: no -wal file)
  mariadb.sql     a mariadb-dump of the same state written by `BIN serve` on a
                  throwaway MariaDB (skipped when mariadbd is missing)
  manifest.json   what the test expects: the messages, the idempotency key,
                  the connection and its subscription, the schema versions

The state: two topics with five messages (one published with an
Idempotency-Key, one with non-ASCII content), one WebSocket connection
subscribed to a topic. The server is then killed (SIGKILL), as a crash or an
upgrade by replacing the binary under a supervisor would leave it: the
connection's rows stay.

Make one with the binary of a release before a schema change, and keep it in
tests/fixtures/upgrade/<name>/ (see the README there)."""
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import free_port, wait_port  # noqa: E402
from services import MariaDB, have  # noqa: E402

import websockets  # noqa: E402

MESSAGES = [
    ("upgrade-a", "one", "fixture", None),
    ("upgrade-a", "zwei \u2713 \u00fc", "fixture", None),
    ("upgrade-a", '{"json":true}', "fixture", None),
    ("upgrade-b", "keyed", "fixture", "fixture-key-1"),
    ("upgrade-b", "last", "", None),
]


def post(api, path, body, key=None):
    req = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if key:
        req.add_header("Idempotency-Key", key)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def write_state(binary, tmp, db_url):
    ws_port, api_port = free_port(), free_port()
    log = tmp / f"houston-{api_port}.log"
    proc = subprocess.Popen(
        [binary, "serve", "--ws-addr", f"127.0.0.1:{ws_port}", "--api-addr",
         f"127.0.0.1:{api_port}", "--db", db_url],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        wait_port(api_port, proc, log, 30)
        wait_port(ws_port, proc, log, 30)
        api = f"http://127.0.0.1:{api_port}"

        async def connection():
            ws = await websockets.connect(f"ws://127.0.0.1:{ws_port}/api/v1/ws")
            hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
            conn_id = hello["connectionID"]
            post(api, "/api/v1/subscribes", {"topic": "upgrade-a", "connectionID": conn_id})
            stored = [dict(post(api, "/api/v1/messages",
                                {"topic": t, "content": c, "author": a}, key), key=key)
                      for t, c, a, key in MESSAGES]
            got = 0
            while got < 3:  # what the subscription receives
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if frame.get("type") == "message":
                    assert frame["message"]["topic"] == "upgrade-a", frame
                    got += 1
            return conn_id, stored

        conn_id, stored = asyncio.run(connection())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    return conn_id, stored


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    binary, out = os.path.abspath(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([binary, "--version"], capture_output=True,
                             text=True).stdout.strip()
    manifest = {"houston": version}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        db = tmp / "houston.db"
        conn_id, stored = write_state(binary, tmp, f"sqlite:{db}")
        with sqlite3.connect(db) as c:  # fold the WAL into the file
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            schema = c.execute("PRAGMA user_version").fetchone()[0]
            c.execute("PRAGMA journal_mode=DELETE")
        (out / "houston.db").write_bytes(db.read_bytes())
        manifest.update(sqlite_schema=schema, sqlite={"connection": conn_id, "messages": stored})
        if have("mariadbd"):
            maria = MariaDB(tmp)
            try:
                conn_id, stored = write_state(binary, tmp, maria.url)
                schema = int(maria.query("SELECT MAX(version) FROM schema_version").strip())
                dump = subprocess.run(
                    ["mariadb-dump", "--no-defaults", f"--socket={maria.sock}",
                     "--single-transaction", "--skip-dump-date", "houston"],
                    capture_output=True, text=True, check=True, env=maria.env).stdout
                (out / "mariadb.sql").write_text(dump)
                manifest.update(mariadb_schema=schema,
                                mariadb={"connection": conn_id, "messages": stored})
            finally:
                maria.stop()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}: {manifest['houston']}, SQLite schema {manifest['sqlite_schema']}, "
          f"MariaDB schema {manifest.get('mariadb_schema')}")


if __name__ == "__main__":
    main()
