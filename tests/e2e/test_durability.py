"""Nothing acknowledged is lost: kill -9 in the middle of a stream of
publishes, restart, and every message answered 201 is in the history, in
order, in a database that passes its integrity check."""
import http.client
import json
import signal
import sqlite3
import threading
import time

from conftest import http as httpie


def publisher(port, topic, acked, stop):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    i = 0
    while not stop.is_set():
        try:
            conn.request("POST", "/api/v1/messages",
                         body=json.dumps({"topic": topic, "content": f"m{i}"}),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            return  # the server died mid-request: that one was not acknowledged
        if resp.status == 201:
            acked.append(json.loads(body)["id"])
        i += 1


def test_kill_9_loses_nothing_acknowledged(fresh_server, tmp_path):
    db = tmp_path / "crash.db"
    srv = fresh_server(db=db)
    acked = [[] for _ in range(4)]
    stop = threading.Event()
    threads = [threading.Thread(target=publisher, args=(srv.api_port, "crash", acked[i], stop))
               for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(5)
    stop.set()
    for t in threads:
        t.join(10)
    total = sum(len(a) for a in acked)
    assert total > 100, "too few publishes before the kill to mean anything"

    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    srv = fresh_server(db=db)
    stored = []
    last = None
    while True:
        args = ["topic==crash", "forward==true", "limit==1000"]
        if last:
            args.append(f"lastID=={last}")
        page = httpie("GET", f"{srv.api}/api/v1/messages", *args).json
        stored += [m["id"] for m in page["messages"]]
        last = page["next"]
        if last is None:
            break
    assert stored == sorted(stored)
    missing = set(id for a in acked for id in a) - set(stored)
    assert not missing, f"{len(missing)} acknowledged messages lost"
    # each publisher's own sequence is in the history in its order
    position = {id: i for i, id in enumerate(stored)}
    for a in acked:
        assert [position[id] for id in a] == sorted(position[id] for id in a)
