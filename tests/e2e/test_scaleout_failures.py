"""The scale-out mode when parts fail: a consumer killed in the middle of a
run, Redis restarted, MariaDB away; and the prototype's forwarder-channel.
Every role is a separate process on a throwaway MariaDB and Redis."""
import asyncio
import http.client
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIN, free_port, wait_port
from services import MariaDB, Redis, have

pytestmark = [pytest.mark.skipif(not (have("redis-server") and have("mariadbd")),
                                 reason="redis-server and mariadb-server are not installed"),
              pytest.mark.timeout(120)]


class Role:
    def __init__(self, tmp, name, command, *args):
        self.name = name
        self.log = tmp / f"{name}.log"
        self.proc = subprocess.Popen([BIN, command, *args], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"))

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


class Cluster:
    """A publisher, notifiers and consumers on one Redis and one MariaDB."""

    def __init__(self, tmp, notifiers=("a", "b"), consumers=2, persistent_redis=False, extra=()):
        self.tmp = tmp
        self.redis = Redis(tmp, persistent=persistent_redis)
        self.maria = MariaDB(tmp)
        common = ["--db", self.maria.url, "--redis", self.redis.url, *extra]
        self.roles = {}
        self.api_port = free_port()
        self.start("publisher", "publisher", *common, "--api-addr", f"127.0.0.1:{self.api_port}")
        wait_port(self.api_port, self.roles["publisher"].proc, self.roles["publisher"].log)
        self.ws = {}
        for node in notifiers:
            self.ws[node] = free_port()
            self.start(f"notifier-{node}", "notifier", *common, "--node-id", node,
                       "--ws-addr", f"127.0.0.1:{self.ws[node]}",
                       "--resume-secret", "scaleout-test-secret")
            wait_port(self.ws[node], self.roles[f"notifier-{node}"].proc,
                      self.roles[f"notifier-{node}"].log)
        for i in range(1, consumers + 1):
            self.start(f"consumer{i}", "consumer", "--redis", self.redis.url, *extra)

    def start(self, name, command, *args):
        self.roles[name] = Role(self.tmp, name, command, *args)

    def close(self):
        try:
            for name, role in self.roles.items():
                if role.proc.poll() is None:
                    assert role.stop() == 0, f"{name} exited badly:\n{role.log.read_text()}"
        finally:
            for role in self.roles.values():
                if role.proc.poll() is None:
                    role.proc.kill()
            self.redis.kill()
            self.maria.stop()

    def request(self, method, path, body=None, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=10)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, (json.loads(data) if data.strip() else None)
        finally:
            if own:
                conn.close()

    def logs(self):
        return "\n".join(f"--- {n}\n{r.log.read_text()[-3000:]}" for n, r in self.roles.items())


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(**kw):
        c = Cluster(tmp_path, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


async def connect_to(port):
    import websockets
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws", max_queue=None)
    hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return ws, hello["connectionID"]


async def subscribe_all(cluster, clients, topic):
    await asyncio.sleep(0.3)  # the notifiers register their connections in Redis
    for ws, cid in clients:
        status, body = await asyncio.to_thread(cluster.request, "POST", "/api/v1/subscribes",
                                               {"topic": topic, "connectionID": cid})
        assert status == 201, body


async def collect(ws, want, deadline):
    """Message ids received until `want` distinct ones arrived or the deadline;
    returns every id received, duplicates included."""
    got = []
    seen = set()
    while len(seen) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            break
        if frame.get("type") == "message":
            got.append(frame["message"]["id"])
            seen.add(frame["message"]["id"])
    return got


async def expect_no_more(ws, seconds=1.0):
    try:
        extra = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"a frame more than expected: {extra[:200]}")


def publish_many(cluster, topic, count, threads=4, on_progress=None, retry_503=False):
    """Publishes count messages over keep-alive connections; returns the ids
    answered 201 and the number of 503 answers seen."""
    ids, lock, unavailable = [], threading.Lock(), [0]
    counter = iter(range(count))
    give_up = time.monotonic() + 60

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", cluster.api_port, timeout=10)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            while True:
                try:
                    status, body = cluster.request("POST", "/api/v1/messages",
                                                   {"topic": topic, "content": f"m{i}"}, conn)
                except (ConnectionError, http.client.HTTPException, OSError):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", cluster.api_port, timeout=10)
                    continue
                if status == 201:
                    with lock:
                        ids.append(body["id"])
                        done = len(ids)
                    if on_progress:
                        on_progress(done)
                    break
                assert status == 503 and retry_503, (status, body)
                assert time.monotonic() < give_up, "still 503 after 60 s"
                assert body["error"]["code"] == "unavailable", body
                with lock:
                    unavailable[0] += 1
                time.sleep(0.05)
        conn.close()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    return ids, unavailable[0]


def test_a_consumer_killed_in_the_middle_of_2000_publishes_loses_nothing(cluster_factory):
    """kill -9 one of two consumers after 500 of 2,000 publishes: the other
    takes over its partitions (their leases expire after 3 heartbeats) and
    their pending events (XAUTOCLAIM at once), every subscriber on both
    notifiers gets every message, none twice."""
    cluster = cluster_factory(extra=("--claim-idle", "1s", "--heartbeat-interval", "1s"))
    victim = cluster.roles["consumer1"]

    def progress(done):
        if done == 500 and victim.proc.poll() is None:
            victim.proc.kill()

    async def go():
        clients = [await connect_to(cluster.ws[node]) for node in ("a", "a", "b", "b")]
        await subscribe_all(cluster, clients, "load")
        receivers = [asyncio.ensure_future(collect(ws, 2000, time.monotonic() + 60))
                     for ws, _ in clients]
        ids, _ = await asyncio.to_thread(publish_many, cluster, "load", 2000, 4, progress)
        got = await asyncio.gather(*receivers)
        for ws, _ in clients:
            await expect_no_more(ws, 0.5)
            await ws.close()
        return ids, got
    ids, got = asyncio.run(go())
    assert len(ids) == 2000
    assert victim.proc.poll() == -signal.SIGKILL
    for received in got:
        missing = set(ids) - set(received)
        assert not missing, f"{len(missing)} messages missing\n{cluster.logs()}"
        assert len(received) == len(set(received)), "a message was delivered twice"
        assert set(received) == set(ids)


def test_forwarder_channel_of_the_prototype(cluster_factory):
    """redis-cli publish forwarder-channel '{"connectionID" : …, "payload": …}',
    verbatim from the prototype's notes, reaches that connection on whichever
    notifier holds it, and nobody else."""
    cluster = cluster_factory(consumers=1)

    async def go():
        wa, _ = await connect_to(cluster.ws["a"])
        wb, cid = await connect_to(cluster.ws["b"])
        await asyncio.sleep(0.3)
        out = cluster.redis.cli(
            "publish", "forwarder-channel",
            "{\"connectionID\" : \"%s\", \"payload\": \"Hello Houston\"}" % cid)
        assert out.strip() == "2"  # both notifiers listen
        assert await asyncio.wait_for(wb.recv(), 5) == "Hello Houston"
        await expect_no_more(wa, 0.5)
        # garbage on the channel is ignored, and the node carries on
        cluster.redis.cli("publish", "forwarder-channel", "not json")
        cluster.redis.cli("publish", "forwarder-channel", '{"connectionID":"x","payload":"y"}')
        cluster.redis.cli("publish", "forwarder-channel",
                          json.dumps({"connectionID": cid, "payload": "again"}))
        assert await asyncio.wait_for(wb.recv(), 5) == "again"
        await wa.close()
        await wb.close()
    asyncio.run(go())


def test_redis_restart_in_the_middle_of_a_run(cluster_factory):
    """Redis is killed after 100 of 300 publishes and started again 1.5 s
    later. Meanwhile the API answers 503 with a JSON error, no role crashes or
    spins, and afterwards every message answered 201 reaches every subscriber
    exactly once; new connections and subscriptions work."""
    cluster = cluster_factory(consumers=1, persistent_redis=True)
    outage = {}

    def restart():
        time.sleep(1.5)
        outage["cpu_after"] = {n: r.cpu_seconds() for n, r in cluster.roles.items()}
        cluster.redis.start()

    def progress(done):
        if done == 100 and "cpu_before" not in outage:
            outage["cpu_before"] = {n: r.cpu_seconds() for n, r in cluster.roles.items()}
            cluster.redis.kill()
            outage["thread"] = threading.Thread(target=restart)
            outage["thread"].start()

    async def go():
        clients = [await connect_to(cluster.ws[node]) for node in ("a", "b")]
        await subscribe_all(cluster, clients, "restart")
        receivers = [asyncio.ensure_future(collect(ws, 300, time.monotonic() + 60))
                     for ws, _ in clients]
        ids, unavailable = await asyncio.to_thread(publish_many, cluster, "restart", 300, 2,
                                                   progress, True)
        got = await asyncio.gather(*receivers)
        for ws, _ in clients:
            await expect_no_more(ws, 0.5)
        # a new connection, on the restarted Redis
        ws, cid = await connect_to(cluster.ws["b"])
        await subscribe_all(cluster, [(ws, cid)], "after")
        status, msg = await asyncio.to_thread(cluster.request, "POST", "/api/v1/messages",
                                              {"topic": "after", "content": "x"})
        assert status == 201
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["message"]["id"] == msg["id"]
        for w, _ in clients + [(ws, cid)]:
            await w.close()
        return ids, unavailable, got
    ids, unavailable, got = asyncio.run(go())
    outage["thread"].join()
    assert len(ids) == 300
    assert unavailable > 0, "no 503 while Redis was away"
    for name, role in cluster.roles.items():
        assert role.proc.poll() is None, f"{name} died:\n{role.log.read_text()}"
        spent = outage["cpu_after"][name] - outage["cpu_before"][name]
        assert spent < 0.5, f"{name} used {spent:.2f} s of CPU in a 1.5 s outage"
    for received in got:
        missing = set(ids) - set(received)
        assert not missing, f"{len(missing)} of 300 missing\n{cluster.logs()}"
        assert len(received) == len(set(received)), "a message was delivered twice"
    assert "is back" in cluster.roles["publisher"].log.read_text()


def test_mariadb_away_gives_503_and_nothing_acknowledged_is_lost(cluster_factory):
    """With MariaDB killed the API answers 503 (and /readyz says why); when it
    is back the roles reconnect by themselves, and every message answered 201,
    before and after, is in the history and was delivered."""
    cluster = cluster_factory(notifiers=("a",), consumers=1)

    async def go():
        ws, cid = await connect_to(cluster.ws["a"])
        await subscribe_all(cluster, [(ws, cid)], "db")
        before, _ = await asyncio.to_thread(publish_many, cluster, "db", 20, 2)
        cluster.maria.kill()
        t0 = time.monotonic()
        status, body = await asyncio.to_thread(cluster.request, "POST", "/api/v1/messages",
                                               {"topic": "db", "content": "lost?"})
        assert status == 503, body
        assert body["error"]["code"] == "unavailable"
        assert time.monotonic() - t0 < 6
        status, body = await asyncio.to_thread(cluster.request, "GET", "/readyz")
        assert status == 503 and "database" in body["error"]["message"], body
        await asyncio.to_thread(cluster.maria.start)
        after = []
        deadline = time.monotonic() + 30
        while len(after) < 20 and time.monotonic() < deadline:
            status, body = await asyncio.to_thread(cluster.request, "POST", "/api/v1/messages",
                                                   {"topic": "db", "content": f"a{len(after)}"})
            if status == 201:
                after.append(body["id"])
            else:
                assert status == 503, body
                await asyncio.sleep(0.2)
        ids = before + after
        got = await collect(ws, len(ids), time.monotonic() + 20)
        await ws.close()
        return ids, got
    ids, got = asyncio.run(go())
    assert len(ids) == 40, cluster.logs()
    assert sorted(got) == sorted(ids)
    status, page = cluster.request("GET", "/api/v1/messages?topic=db&limit=1000&forward=true")
    assert status == 200
    assert [m["id"] for m in page["messages"]] == sorted(ids)


async def open_then_commit_late(cluster, topic):
    """The opening of the resume tests: a client on notifier a, subscribed to
    topic, gets "first"; then the only consumer stops and "late" is committed,
    its event waiting in the stream. Returns the WebSocket, its resume token
    and the answers to both publishes."""
    import websockets
    ws = await websockets.connect(f"ws://127.0.0.1:{cluster.ws['a']}/api/v1/ws")
    hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
    cid, token = hello["connectionID"], hello["resumeToken"]
    await subscribe_all(cluster, [(ws, cid)], topic)
    status, first = await asyncio.to_thread(cluster.request, "POST", "/api/v1/messages",
                                            {"topic": topic, "content": "first"})
    assert status == 201
    assert await collect(ws, 1, time.monotonic() + 5) == [first["id"]]
    assert cluster.roles["consumer1"].stop() == 0
    status, late = await asyncio.to_thread(cluster.request, "POST", "/api/v1/messages",
                                           {"topic": topic, "content": "late"})
    assert status == 201
    return ws, token, first, late


async def consumer_back_then_after(cluster, ws, topic):
    """The closing of the resume tests: a consumer comes back (the waiting
    events reach the notifier), then "after" is committed. Returns its answer
    and what ws got before it was quiet for 0.5 s; closes ws."""
    cluster.start("consumer2", "consumer", "--redis", cluster.redis.url)
    await asyncio.sleep(1.5)  # the waiting events reach the notifier now
    status, after = await asyncio.to_thread(cluster.request, "POST", "/api/v1/messages",
                                            {"topic": topic, "content": "after"})
    assert status == 201
    got = await collect(ws, 1, time.monotonic() + 5)
    await expect_no_more(ws, 0.5)
    await ws.close()
    return after, got


def test_a_message_replayed_on_resume_is_not_sent_again_when_its_event_arrives(cluster_factory):
    """A message committed while no consumer runs is in the history but its
    event waits in the stream. A client resuming meanwhile gets it in the
    replay; when a consumer comes back and the event reaches the notifier,
    the client must not get it a second time (nor miss what follows)."""
    cluster = cluster_factory(notifiers=("a",), consumers=1)

    async def go():
        import websockets
        ws, token, first, late = await open_then_commit_late(cluster, "late-event")
        ws.transport.abort()
        await asyncio.sleep(0.5)
        ws = await websockets.connect(f"ws://127.0.0.1:{cluster.ws['a']}/api/v1/ws"
                                      f"?resume={token}&lastID={first['id']}")
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["resumed"] is True and hello["replayed"] == 1, hello
        assert await collect(ws, 1, time.monotonic() + 5) == [late["id"]]
        after, got = await consumer_back_then_after(cluster, ws, "late-event")
        assert got == [after["id"]]

    asyncio.run(go())


def test_a_late_event_below_a_resume_without_cursor_is_not_sent_after_newer_ones(cluster_factory):
    """A client resuming without lastID or ack gets what was created after
    its connection dropped. A message created before the drop whose event
    was still waiting (no consumer ran) reaches the notifier after the
    replay: it is below the resume's cursor, and sending it then put it
    after the newer messages the replay sent (the delivery checker's
    order_scaleout, CI seed 1301). It is dropped, as one at or below a
    client's own cursor is."""
    cluster = cluster_factory(notifiers=("a",), consumers=1)

    async def go():
        import websockets
        ws, token, _, late = await open_then_commit_late(cluster, "late-below")
        await asyncio.sleep(0.05)
        ws.transport.abort()  # detached now: the resume's cursor is this moment
        await asyncio.sleep(0.5)
        status, newer = await asyncio.to_thread(cluster.request, "POST", "/api/v1/messages",
                                                {"topic": "late-below", "content": "newer"})
        assert status == 201
        ws = await websockets.connect(f"ws://127.0.0.1:{cluster.ws['a']}/api/v1/ws"
                                      f"?resume={token}")
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["resumed"] is True and hello["replayed"] == 1, hello
        assert await collect(ws, 1, time.monotonic() + 5) == [newer["id"]]
        after, got = await consumer_back_then_after(cluster, ws, "late-below")
        return late["id"], newer["id"], after["id"], got
    late, newer, after, got = asyncio.run(go())
    assert late < newer
    assert got == [after], f"got {got} after {newer}; {late} is below the resume's cursor"


def test_a_connection_opened_while_mariadb_is_away_gets_its_row_when_it_is_back(cluster_factory):
    """A notifier keeps accepting WebSockets while MariaDB is away; the
    connection's row is written once MariaDB is back (tried again each
    second), so the connection is listed, resumable, and its subscriptions
    have a row to go with. Before, the failed write was only logged: the
    connection stayed unlisted for good, and subscriptions an API subscribe
    stored for it outlived it (the delivery checker's subscription_lingers)."""
    cluster = cluster_factory(notifiers=("a",), consumers=1)

    async def go():
        cluster.maria.kill()
        ws, cid = await connect_to(cluster.ws["a"])
        await asyncio.to_thread(cluster.maria.start)
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            status, body = await asyncio.to_thread(cluster.request, "GET",
                                                   f"/api/v1/connections/{cid}")
            if status == 200:
                break
            await asyncio.sleep(0.3)
        await ws.close()
        return cid, status
    cid, status = asyncio.run(go())
    assert status == 200, f"{cid} never got its row\n{cluster.logs()}"


class Cut:
    """A TCP relay to MariaDB that the test can cut (every relayed
    connection closed, new ones refused) and mend: one role loses the
    database while the others keep it."""

    def __init__(self, port):
        import socket
        self.target = port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.cut = False
        self.pairs = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import socket
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut:
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def set_cut(self, cut):
        import socket
        self.cut = cut
        if cut:
            with self.lock:
                pairs, self.pairs = self.pairs, []
            for pair in pairs:
                for s in pair:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def close(self):
        self.set_cut(True)
        self.listener.close()


def test_a_connection_without_a_row_leaves_no_subscription_at_its_detach(cluster_factory):
    """A connection that began while its notifier could not reach MariaDB has
    no row yet; an API subscribe (the publisher reaches MariaDB) stores a
    subscription for it. When it detaches before its row is written, that
    subscription goes with the detach: it used to stay until the end of the
    resume window, and for good when the node died before then (the dead
    node's cleanup goes by the rows) - the checker's subscription_lingers in
    CI, seed 1301."""
    cluster = cluster_factory(notifiers=(), consumers=1)
    relay = Cut(cluster.maria.port)
    port = free_port()
    db = cluster.maria.url.replace(f":{cluster.maria.port}/", f":{relay.port}/")
    cluster.start("notifier-p", "notifier", "--db", db, "--redis", cluster.redis.url,
                  "--node-id", "p", "--ws-addr", f"127.0.0.1:{port}", "--resume-window", "60s")
    wait_port(port, cluster.roles["notifier-p"].proc, cluster.roles["notifier-p"].log)

    async def go():
        relay.set_cut(True)
        ws, cid = await connect_to(port)
        await asyncio.sleep(0.3)  # registered in Redis (the directory), not in MariaDB
        status, body = await asyncio.to_thread(cluster.request, "POST", "/api/v1/subscribes",
                                               {"topic": "orphan", "connectionID": cid})
        assert status == 201, body
        ws.transport.abort()
        await asyncio.sleep(1.5)  # the detach is written while MariaDB is away: retried
        relay.set_cut(False)
        deadline = time.monotonic() + 15
        subs = None
        while time.monotonic() < deadline:
            status, subs = await asyncio.to_thread(
                cluster.request, "GET", f"/api/v1/subscribes?connectionID={cid}")
            if status == 200 and subs == []:
                break
            await asyncio.sleep(0.3)
        return cid, subs
    try:
        cid, subs = asyncio.run(go())
    finally:
        relay.close()
    assert subs == [], f"{cid} still has {subs}\n{cluster.logs()}"
