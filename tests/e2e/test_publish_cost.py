"""What one publish costs MariaDB, counted by the server itself (SHOW GLOBAL
STATUS): issue 16 item 4 found the publisher's writer spending its time in
round trips to MariaDB, a plain publish being three statements (SAVEPOINT,
INSERT, RELEASE SAVEPOINT) where one does (docs/performance.md). The INSERT
of a plain publish is one statement, which InnoDB undoes by itself when it
fails, so the store takes no savepoint around it; a failing write still
fails alone (unit/store/test_store_mariadb, test_failed_write_fails_alone).

One publisher on a throwaway MariaDB and Redis; no notifier or consumer, so
every statement counted is the publisher's."""
import subprocess
import time

import pytest

from conftest import BIN, call, free_port, wait_port
from services import MariaDB, Redis, have

pytestmark = [pytest.mark.skipif(not (have("redis-server") and have("mariadbd")),
                                 reason="redis-server and mariadb-server are not installed"),
              pytest.mark.timeout(90)]

COUNTERS = ("Com_savepoint", "Com_release_savepoint", "Com_rollback_to_savepoint", "Com_insert",
            "Com_commit")


def status(maria):
    rows = maria.query("SHOW GLOBAL STATUS WHERE Variable_name IN (%s)"
                       % ",".join(f"'{c}'" for c in COUNTERS))
    return {name: int(value) for name, value in (line.split("\t") for line in rows.splitlines())}


def test_a_plain_publish_is_one_insert_and_no_savepoint(tmp_path):
    redis, maria = Redis(tmp_path), MariaDB(tmp_path)
    api = free_port()
    log = tmp_path / "publisher.log"
    proc = subprocess.Popen([BIN, "publisher", "--db", maria.url, "--redis", redis.url,
                             "--api-addr", f"127.0.0.1:{api}"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        wait_port(api, proc, log, deadline=60)
        for _ in range(100):  # Redis is connected in the background
            if call(api, "GET", "/readyz")[0] == 200:
                break
            time.sleep(0.1)
        # each topic's first publish creates its sequence row (INSERT ...
        # SELECT, counted apart): done before counting
        for topic in ("a", "b", "c"):
            assert call(api, "POST", "/api/v1/messages", {"topic": topic, "content": "first"})[0] == 201
        before = status(maria)
        for i in range(30):
            s, body = call(api, "POST", "/api/v1/messages", {"topic": "abc"[i % 3], "content": str(i)})
            assert s == 201, body
        after = status(maria)
        spent = {c: after[c] - before[c] for c in COUNTERS}
        assert spent["Com_insert"] == 30, spent
        assert spent["Com_commit"] >= 1, spent
        assert spent["Com_savepoint"] == 0, spent
        assert spent["Com_release_savepoint"] == 0, spent
        assert spent["Com_rollback_to_savepoint"] == 0, spent
        # and the thirty are there, in order
        s, page = call(api, "GET", "/api/v1/messages?topic=a&limit=20&forward=true")
        assert s == 200
        assert [m["content"] for m in page["messages"]] == ["first"] + [str(i) for i in range(0, 30, 3)]
    finally:
        proc.terminate()
        assert proc.wait(15) == 0, log.read_text()[-3000:]
        redis.stop()
        maria.stop()
