"""The scale-out mode on a Redis Cluster (issue 16, item 3): a publisher, two
notifiers and two consumers on MariaDB and a real cluster of three masters
and three replicas (services.RedisCluster), `--redis` given as several
seeds; the same basics against one Redis, as before. Then a master killed
while publishing: every publish that got a 2xx reaches every subscriber
exactly once and in order (a subscriber closed with 1001 resumes with
lastID, and what it gets after resuming counts), and the system works on
after its replica took over."""
import asyncio
import contextlib
import json
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIN, call, free_port, run, wait_port
from services import MariaDB, Redis, RedisCluster, have

pytestmark = [pytest.mark.skipif(not (have("redis-server") and have("redis-cli")
                                      and have("mariadbd")),
                                 reason="redis-server, redis-cli and mariadb-server are not "
                                        "installed"),
              pytest.mark.timeout(240)]


class Role:
    def __init__(self, tmp, name, command, *args):
        self.log = tmp / f"{name}.log"
        self.proc = subprocess.Popen([BIN, command, *args], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"))

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(15)


@contextlib.contextmanager
def topology(tmp, kind):
    """kind "cluster": a Redis Cluster, the URL three seeds; "single": one
    Redis. Every role must exit 0 on SIGTERM at the end."""
    redis = RedisCluster(tmp) if kind == "cluster" else Redis(tmp)
    maria = None
    roles = {}
    try:
        maria = MariaDB(tmp)
        # Three heartbeats (the life of a node's alive key) outlast a
        # failover (about 3 s here): a notifier is not taken for dead by
        # the others while its master is being replaced (docs/scaling.md).
        common = ["--db", maria.url, "--redis", redis.url, "--heartbeat-interval", "2s"]
        api = free_port()
        roles["publisher"] = Role(tmp, "publisher", "publisher", *common,
                                  "--api-addr", f"127.0.0.1:{api}")
        wait_port(api, roles["publisher"].proc, roles["publisher"].log, deadline=30)
        ws = {}
        for node in ("a", "b"):
            ws[node] = free_port()
            roles[node] = Role(tmp, f"notifier-{node}", "notifier", *common, "--node-id", node,
                               "--ws-addr", f"127.0.0.1:{ws[node]}",
                               "--resume-secret", "cluster-test-secret")
            wait_port(ws[node], roles[node].proc, roles[node].log, deadline=30)
        for i in (1, 2):
            roles[f"consumer{i}"] = Role(tmp, f"consumer{i}", "consumer", "--redis", redis.url,
                                         "--claim-idle", "3s")
        topo = {"kind": kind, "api_port": api, "ws": ws, "maria": maria, "redis": redis,
                "roles": roles, "tmp": tmp}
        wait_ready(topo)
        yield topo
        for name, role in roles.items():
            assert role.stop() == 0, f"{name} exited badly:\n{role.log.read_text()[-4000:]}"
    finally:
        for role in roles.values():
            if role.proc.poll() is None:
                role.proc.kill()
        redis.stop()
        if maria:
            maria.stop()


def wait_ready(topo, deadline=30):
    """Every role's /readyz says 200 (its bus is up)."""
    import http.client as httplib
    end = time.monotonic() + deadline
    ports = [topo["api_port"], *topo["ws"].values()]
    while time.monotonic() < end:
        ok = 0
        for port in ports:
            try:
                conn = httplib.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/readyz")
                ok += conn.getresponse().status == 200
                conn.close()
            except OSError:
                pass
        if ok == len(ports):
            return
        time.sleep(0.2)
    raise AssertionError("the roles are not ready:\n" + "\n".join(
        f"{n}: {r.log.read_text()[-1500:]}" for n, r in topo["roles"].items()))


@pytest.fixture(scope="module", params=["single", "cluster"])
def topo(request, tmp_path_factory):
    if request.param == "cluster" and not have("redis-cli"):
        pytest.skip("redis-cli is not installed")
    with topology(tmp_path_factory.mktemp(f"redis-{request.param}"), request.param) as t:
        yield t


async def connect_to(port, query=""):
    import websockets
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws{query}")
    hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return ws, hello


def publish(topo, topic, content):
    status, body = call(topo["api_port"], "POST", "/api/v1/messages",
                        {"topic": topic, "content": content})
    assert status == 201, (status, body)
    return body["id"]


def subscribe(topo, cid, topic):
    status, body = call(topo["api_port"], "POST", "/api/v1/subscribes",
                        {"topic": topic, "connectionID": cid})
    assert status == 201, (status, body)


async def messages(ws, count, timeout=10):
    got = []
    while len(got) < count:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame.get("type") == "message":
            got.append(frame["message"]["id"])
    return got


async def silence(ws, seconds=0.5):
    try:
        frame = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"an extra frame: {frame}")


def test_clients_on_both_notifiers_get_every_message_once_in_order(topo):
    topic = f"deliver-{topo['kind']}"

    async def go():
        clients = []
        try:
            for node in ("a", "a", "b", "b"):
                ws, hello = await connect_to(topo["ws"][node])
                clients.append(ws)
                await asyncio.to_thread(subscribe, topo, hello["connectionID"], topic)
            sent = [await asyncio.to_thread(publish, topo, topic, str(i)) for i in range(20)]
            for ws in clients:
                assert await messages(ws, len(sent)) == sent
                await silence(ws)
        finally:
            for ws in clients:
                await ws.close()
    run(go(), timeout=60)


def test_notification_by_connection_id_reaches_either_notifier(topo):
    async def go():
        for node in ("a", "b"):
            ws, hello = await connect_to(topo["ws"][node])
            cid = hello["connectionID"]
            await asyncio.sleep(0.3)  # the node registers the connection
            status, _ = await asyncio.to_thread(call, topo["api_port"], "POST",
                                                "/api/v1/notification",
                                                {"connectionID": cid, "payload": f"hi {node}"})
            assert status == 202
            assert await asyncio.wait_for(ws.recv(), 10) == f"hi {node}"
            status, info = await asyncio.to_thread(call, topo["api_port"], "GET",
                                                   f"/api/v1/connections/{cid}")
            assert status == 200 and info["node"] == node, info
            await ws.close()
    run(go(), timeout=40)


def test_resume_on_the_other_notifier_and_history(topo):
    topic = f"resume-{topo['kind']}"

    async def go():
        ws, hello = await connect_to(topo["ws"]["a"])
        cid, token = hello["connectionID"], hello["resumeToken"]
        await asyncio.to_thread(subscribe, topo, cid, topic)
        before = [await asyncio.to_thread(publish, topo, topic, f"m{i}") for i in range(2)]
        assert await messages(ws, 2) == before
        ws.transport.abort()
        await asyncio.sleep(0.5)
        missed = [await asyncio.to_thread(publish, topo, topic, f"n{i}") for i in range(3)]
        ws, hello = await connect_to(topo["ws"]["b"], f"?resume={token}&lastID={before[-1]}")
        assert hello["resumed"] is True and hello["connectionID"] == cid, hello
        assert await messages(ws, 3) == missed
        live = await asyncio.to_thread(publish, topo, topic, "live")
        assert await messages(ws, 1) == [live]
        await ws.close()
        status, page = await asyncio.to_thread(
            call, topo["api_port"], "GET",
            f"/api/v1/messages?topic={topic}&forward=true&limit=100")
        assert status == 200
        assert [m["id"] for m in page["messages"]] == before + missed + [live]
    run(go(), timeout=60)


def test_the_keys_of_a_node_and_a_topic_share_a_slot(topo):
    """On the cluster: a node's stream and counter in one slot, served by
    the master the map names (a script on them would fail otherwise)."""
    if topo["kind"] != "cluster":
        pytest.skip("cluster only")
    cluster = topo["redis"]
    port = cluster.master_of("houston:{n:a}:stream")
    for what in ("seq", "alive", "topics", "conns"):
        assert cluster.master_of(f"houston:{{n:a}}:{what}") == port
    # Written by the node's start script and its heartbeat, on that master.
    assert cluster.cli(port, "EXISTS", "houston:{n:a}:seq").strip() == "1"
    assert cluster.cli(port, "EXISTS", "houston:{n:a}:alive").strip() == "1"
    assert cluster.master_of("houston:{t:x}:nodes") == cluster.master_of("houston:{t:x}:pend:a")
    # Every command went to its key's master: no node answered MOVED (a
    # command routed by the wrong argument is redirected, every time).
    for node in cluster.alive():
        assert "errorstat_MOVED" not in cluster.cli(node, "INFO", "errorstats"), node


def test_the_forwarder_channel_from_any_node(topo):
    """The prototype's `redis-cli publish forwarder-channel …` reaches the
    connection on whichever notifier holds it - published on any node of a
    cluster (a cluster's PUBLISH reaches every node's subscribers)."""
    redis = topo["redis"]
    ports = redis.ports if topo["kind"] == "cluster" else [redis.port]

    async def go():
        ws, hello = await connect_to(topo["ws"]["b"])
        await asyncio.sleep(0.3)  # the node subscribed long ago; the connection registers
        for port in ports:
            payload = json.dumps({"connectionID": hello["connectionID"],
                                  "payload": f"via {port}"})
            await asyncio.to_thread(subprocess.run,
                                    ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "publish",
                                     "forwarder-channel", payload],
                                    capture_output=True, check=True, timeout=10)
            assert await asyncio.wait_for(ws.recv(), 10) == f"via {port}"
        await ws.close()
    run(go(), timeout=60)


# ---- a master killed while publishing -----------------------------------------------


class Subscriber:
    """A WebSocket client of one topic that resumes (with lastID) on either
    notifier whenever its connection closes, and keeps every message id it
    got, in order."""

    def __init__(self, topo, topic, node):
        self.topo, self.topic, self.node = topo, topic, node
        self.got = []
        self.closes = []
        self.ready = asyncio.Event()

    async def run(self, stop):
        import websockets
        ws, hello = await connect_to(self.topo["ws"][self.node])
        cid, token = hello["connectionID"], hello["resumeToken"]
        await asyncio.to_thread(subscribe, self.topo, cid, self.topic)
        self.ready.set()
        nodes = ["a", "b"]
        while not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                if frame.get("type") == "message":
                    self.got.append(frame["message"]["id"])
                continue
            except asyncio.TimeoutError:
                continue
            except websockets.exceptions.ConnectionClosed:
                self.closes.append(ws.close_code)
            # Resume on either notifier, from the last message it got.
            while not stop.is_set():
                node = nodes[len(self.closes) % 2]
                last = f"&lastID={self.got[-1]}" if self.got else ""
                try:
                    ws, hello = await connect_to(self.topo["ws"][node], f"?resume={token}{last}")
                    if hello.get("type") == "connected" and hello.get("resumed"):
                        token = hello.get("resumeToken", token)
                        break
                    await ws.close()
                except Exception:
                    pass
                await asyncio.sleep(0.3)
        await ws.close()


def test_a_master_killed_while_publishing(tmp_path):
    if not have("redis-cli"):
        pytest.skip("redis-cli is not installed")
    topic = "failover"
    with topology(tmp_path, "cluster") as topo:
        cluster = topo["redis"]
        acked, failed = [], []
        killed = {}

        def publisher(count):
            for i in range(count):
                try:
                    status, body = call(topo["api_port"], "POST", "/api/v1/messages",
                                        {"topic": topic, "content": f"m{i}"})
                except OSError as e:
                    failed.append(str(e))
                    continue
                if 200 <= status < 300:
                    acked.append(body["id"])
                else:
                    failed.append(status)
                if i == count // 3:
                    # The master of notifier a's stream goes (kill -9); its
                    # replica takes over.
                    killed["t"] = time.monotonic()
                    killed["ports"] = cluster.kill_master(key="houston:{n:a}:stream")
                    killed["took"] = time.monotonic() - killed["t"]
                time.sleep(0.02)

        async def go():
            stop = asyncio.Event()
            subs = [Subscriber(topo, topic, node) for node in ("a", "a", "b", "b")]
            tasks = [asyncio.create_task(s.run(stop)) for s in subs]
            for s in subs:
                await asyncio.wait_for(s.ready.wait(), 20)
            await asyncio.to_thread(publisher, 150)
            end = time.monotonic() + 60
            while time.monotonic() < end and not all(set(acked) <= set(s.got) for s in subs):
                await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*tasks)
            return subs

        subs = run(go(), timeout=200)
        assert acked, failed
        for i, s in enumerate(subs):
            missing = [m for m in acked if m not in s.got]
            assert not missing, (f"subscriber {i} missed {len(missing)} of {len(acked)} "
                                 f"(closes {s.closes}, killed {killed})")
            assert len(s.got) == len(set(s.got)), f"subscriber {i} got duplicates"
            assert s.got == sorted(s.got), f"subscriber {i} got them out of order"
        print(f"failover: {len(acked)} acknowledged, {len(failed)} refused, killed "
              f"{killed.get('ports')} in {killed.get('took', 0):.1f} s; closes "
              f"{[s.closes for s in subs]}")

        # The system works on after the promotion: a new subscriber on each
        # notifier gets a new message.
        async def after():
            clients = []
            for node in ("a", "b"):
                ws, hello = await connect_to(topo["ws"][node])
                await asyncio.to_thread(subscribe, topo, hello["connectionID"], "after")
                clients.append(ws)
            mid = await asyncio.to_thread(publish, topo, "after", "x")
            for ws in clients:
                assert await messages(ws, 1) == [mid]
                await ws.close()
        wait_ready(topo)
        run(after(), timeout=40)
