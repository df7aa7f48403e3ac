"""Upgrades, downgrades, backups (issue 19 item 3; docs/operations.md).

Databases written by earlier houston builds are kept in
tests/fixtures/upgrade/<name>/ (made by scripts/make-upgrade-fixture.py: a
SQLite file and a mariadb-dump of the same state, and a manifest of what is in
them). The current binary opens each - `houston migrate`, then a server - and
everything is still there: the history (every field of every message, in
order, by id), the connection's subscription and the idempotency key (a
repeat within the window still answers the original message). A database of
a newer houston is refused with a clear message. An online backup taken while
publishing (SQLite's backup API through the sqlite3 shell; mariadb-dump
--single-transaction) restores every message acknowledged before it began.

The fixtures' messages were written on the day the fixture was made; the
servers that check the idempotency key run under libfaketime at that day (one
hour later), so the key is within its 24 h window whenever the test runs."""
import glob
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import BIN, ROOT, free_port, wait_port
from services import MariaDB, have

FIXTURES = sorted(Path(p) for p in glob.glob(str(ROOT / "tests/fixtures/upgrade/*/manifest.json")))
FAKETIME_LIB = next(iter(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")), None)
need_mariadb = pytest.mark.skipif(not have("mariadbd"), reason="needs mariadb-server")
# A MariaDB server each, and houston started two or three times.
pytestmark = pytest.mark.timeout(120)


def manifest_of(path):
    return json.loads(path.read_text())


def clock_near(messages):
    """libfaketime's FAKETIME for one hour after the fixture was written."""
    first = min(m["createdAt"] for m in messages)
    when = datetime.strptime(first, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return "@" + (when + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")


def environment(faketime=None):
    env = dict(os.environ)
    if faketime and FAKETIME_LIB:
        env.update(LD_PRELOAD=FAKETIME_LIB, FAKETIME=faketime, FAKETIME_DONT_FAKE_MONOTONIC="1")
        if os.environ.get("HOUSTON_SANITIZED"):  # see test_topic_order.py
            asan = os.environ.get("ASAN_OPTIONS", "")
            env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    return env


def migrate(db_url):
    return subprocess.run([BIN, "migrate", "--db", db_url, "--db-wait", "10s"],
                          capture_output=True, text=True, timeout=60)


class Serve:
    """houston serve on db_url, optionally with a faked wall clock."""

    def __init__(self, tmp, db_url, faketime=None):
        self.ws_port, self.api_port = free_port(), free_port()
        self.log = tmp / f"serve-{self.api_port}.log"
        self.proc = subprocess.Popen(
            [BIN, "serve", "--db", db_url, "--ws-addr", f"127.0.0.1:{self.ws_port}",
             "--api-addr", f"127.0.0.1:{self.api_port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"),
            env=environment(faketime))
        wait_port(self.api_port, self.proc, self.log, 30)

    def call(self, method, path, body=None, key=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=10)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        try:
            conn.request(method, path, None if body is None else json.dumps(body), headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, json.loads(data) if data.strip() else None
        finally:
            conn.close()

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(15) == 0, self.log.read_text()


def latest_schema(tmp):
    """The schema version of a database this houston creates."""
    fresh = tmp / "fresh.db"
    assert migrate(f"sqlite:{fresh}").returncode == 0
    with sqlite3.connect(fresh) as c:
        return c.execute("PRAGMA user_version").fetchone()[0]


def check_served(srv, state):
    """Every message by id and in its topic's history, the idempotency key,
    and a new publish after them."""
    messages = state["messages"]
    for m in messages:
        status, got = srv.call("GET", f"/api/v1/messages/{m['id']}")
        assert status == 200, (m, got)
        assert got == {k: m[k] for k in ("id", "topic", "content", "author", "createdAt")}
    for topic in sorted({m["topic"] for m in messages}):
        status, page = srv.call("GET", f"/api/v1/messages?topic={topic}&limit=100")
        assert status == 200
        # newest first, as the history answers
        assert [m["id"] for m in page["messages"]] == \
            [m["id"] for m in reversed(messages) if m["topic"] == topic]
    keyed = next(m for m in messages if m["key"])
    status, again = srv.call("POST", "/api/v1/messages",
                             {"topic": keyed["topic"], "content": keyed["content"],
                              "author": keyed["author"]}, key=keyed["key"])
    assert (status, again["id"]) == (200, keyed["id"]), "the idempotency key was lost"
    status, new = srv.call("POST", "/api/v1/messages", {"topic": "upgrade-a", "content": "after"})
    assert status == 201
    assert new["id"] > max(m["id"] for m in messages if m["topic"] == "upgrade-a")


@pytest.mark.skipif(not FIXTURES, reason="no fixtures")
@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.parent.name for p in FIXTURES])
def test_sqlite_database_of_an_earlier_build_keeps_everything(tmp_path, fixture):
    m = manifest_of(fixture)
    state = m["sqlite"]
    latest = latest_schema(tmp_path)
    db = tmp_path / "houston.db"
    shutil.copy(fixture.parent / "houston.db", db)
    done = migrate(f"sqlite:{db}")
    assert done.returncode == 0, done.stderr
    if m["sqlite_schema"] < latest:
        assert f"migrated to schema version {latest}" in done.stderr
    assert migrate(f"sqlite:{db}").returncode == 0  # a second run changes nothing
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == latest
        assert c.execute("SELECT topic FROM subscriptions WHERE connection_id = ?",
                         (state["connection"],)).fetchall() == [("upgrade-a",)]
        assert c.execute("SELECT count(*) FROM connections WHERE id = ?",
                         (state["connection"],)).fetchone()[0] == 1
        keyed = next(x for x in state["messages"] if x["key"])
        assert c.execute("SELECT message_id FROM idempotency_keys WHERE key = ?",
                         (keyed["key"],)).fetchall() == [(keyed["id"],)]
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    if not FAKETIME_LIB:
        pytest.skip("needs faketime for the idempotency window")
    srv = Serve(tmp_path, f"sqlite:{db}", clock_near(state["messages"]))
    try:
        check_served(srv, state)
    finally:
        srv.stop()


@need_mariadb
@pytest.mark.skipif(not FIXTURES, reason="no fixtures")
@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.parent.name for p in FIXTURES])
def test_mariadb_database_of_an_earlier_build_keeps_everything(tmp_path, fixture):
    m = manifest_of(fixture)
    if "mariadb" not in m:
        pytest.skip("this fixture has no MariaDB dump")
    state = m["mariadb"]
    maria = MariaDB(tmp_path)
    try:
        subprocess.run(["mariadb", "--no-defaults", f"--socket={maria.sock}", "houston"],
                       stdin=open(fixture.parent / "mariadb.sql"), check=True, env=maria.env)
        done = migrate(maria.url)
        assert done.returncode == 0, done.stderr
        latest = int(maria.query("SELECT MAX(version) FROM schema_version").strip())
        if m["mariadb_schema"] < latest:
            assert f"migrated to schema version {latest}" in done.stderr
        assert maria.query("SELECT topic FROM subscriptions WHERE connection_id = "
                           f"'{state['connection']}'").split() == ["upgrade-a"]
        keyed = next(x for x in state["messages"] if x["key"])
        assert maria.query("SELECT message_id FROM idempotency_keys WHERE `key` = "
                           f"'{keyed['key']}'").split() == [keyed["id"]]
        if not FAKETIME_LIB:
            pytest.skip("needs faketime for the idempotency window")
        srv = Serve(tmp_path, maria.url, clock_near(state["messages"]))
        try:
            check_served(srv, state)
        finally:
            srv.stop()
    finally:
        maria.stop()


def test_a_sqlite_database_of_a_newer_houston_is_refused(tmp_path):
    latest = latest_schema(tmp_path)
    db = tmp_path / "newer.db"
    assert migrate(f"sqlite:{db}").returncode == 0
    with sqlite3.connect(db) as c:
        c.execute(f"PRAGMA user_version = {latest + 1}")
    for args in (["migrate"], ["serve", "--ws-addr", f"127.0.0.1:{free_port()}",
                               "--api-addr", f"127.0.0.1:{free_port()}"]):
        done = subprocess.run([BIN, *args, "--db", f"sqlite:{db}"], capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 1, done.stderr
        assert (f"has schema version {latest + 1}, newer than this houston ({latest})"
                in done.stderr)
    with sqlite3.connect(db) as c:  # untouched
        assert c.execute("PRAGMA user_version").fetchone()[0] == latest + 1


@need_mariadb
def test_a_mariadb_database_of_a_newer_houston_is_refused(tmp_path):
    maria = MariaDB(tmp_path)
    try:
        assert migrate(maria.url).returncode == 0
        latest = int(maria.query("SELECT MAX(version) FROM schema_version").strip())
        maria.query(f"INSERT INTO schema_version (version) VALUES ({latest + 1})")
        done = migrate(maria.url)
        assert done.returncode == 1
        assert f"has schema version {latest + 1}, newer than this houston ({latest})" in done.stderr
    finally:
        maria.stop()


class Publisher(threading.Thread):
    """Publishes on one keep-alive connection until stopped; keeps the ids
    of the acknowledged publishes with the time each answer came."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.acked, self.errors = port, [], []
        self.stopping = threading.Event()

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = 0
        while not self.stopping.is_set():
            i += 1
            body = json.dumps({"topic": f"backup-{i % 3}", "content": f"m{i}"})
            conn.request("POST", "/api/v1/messages", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status == 201:
                self.acked.append((time.monotonic(), json.loads(data)["id"]))
            else:
                self.errors.append((resp.status, data))
        conn.close()

    def acked_before(self, t):
        return [mid for when, mid in list(self.acked) if when < t]


def all_ids(srv):
    ids = set()
    for topic in ("backup-0", "backup-1", "backup-2"):
        cursor = ""
        while True:
            status, page = srv.call("GET", f"/api/v1/messages?topic={topic}&limit=1000{cursor}")
            assert status == 200
            ids.update(m["id"] for m in page["messages"])
            if not page.get("next"):
                break
            cursor = f"&lastID={page['next']}"
    return ids


def backup_while_publishing(tmp_path, db_url, take_backup):
    srv = Serve(tmp_path, db_url)
    pub = Publisher(srv.api_port)
    pub.start()
    try:
        time.sleep(1.0)
        began = time.monotonic()
        take_backup()
        time.sleep(0.5)  # publishing goes on after the backup
    finally:
        pub.stopping.set()
        pub.join(15)
        srv.stop()
    assert not pub.errors, pub.errors[:3]
    wanted = pub.acked_before(began)
    assert len(wanted) > 50, "too few publishes to say anything"
    return wanted


def test_sqlite_online_backup_while_publishing_restores_every_acknowledged_message(tmp_path):
    if not shutil.which("sqlite3"):
        pytest.skip("needs the sqlite3 shell")
    live, backup = tmp_path / "live.db", tmp_path / "backup.db"
    # What docs/operations.md says to run.
    wanted = backup_while_publishing(
        tmp_path, f"sqlite:{live}",
        lambda: subprocess.run(["sqlite3", str(live), f".backup '{backup}'"], check=True,
                               timeout=60))
    with sqlite3.connect(backup) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    restored = Serve(tmp_path, f"sqlite:{backup}")
    try:
        missing = set(wanted) - all_ids(restored)
    finally:
        restored.stop()
    assert not missing, f"{len(missing)} acknowledged messages missing from the backup"


@need_mariadb
def test_mariadb_dump_while_publishing_restores_every_acknowledged_message(tmp_path):
    maria = MariaDB(tmp_path)
    dump = tmp_path / "houston.sql"
    try:
        def take():  # what docs/operations.md says to run
            with open(dump, "w") as out:
                subprocess.run(["mariadb-dump", "--no-defaults", f"--socket={maria.sock}",
                                "--single-transaction", "houston"], stdout=out, check=True,
                               env=maria.env, timeout=60)
        wanted = backup_while_publishing(tmp_path, maria.url, take)
        subprocess.run(["mariadb", "--no-defaults", f"--socket={maria.sock}", "-e",
                        "CREATE DATABASE restored"], check=True, env=maria.env)
        subprocess.run(["mariadb", "--no-defaults", f"--socket={maria.sock}", "restored"],
                       stdin=open(dump), check=True, env=maria.env)
        restored = Serve(tmp_path, maria.url.rsplit("/", 1)[0] + "/restored")
        try:
            missing = set(wanted) - all_ids(restored)
        finally:
            restored.stop()
        assert not missing, f"{len(missing)} acknowledged messages missing from the dump"
    finally:
        maria.stop()
