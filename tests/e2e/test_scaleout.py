"""The scale-out mode: one publisher, two notifiers and two consumers as
separate processes on a throwaway MariaDB and Redis."""
import asyncio
import contextlib
import json
import select
import signal
import subprocess
import time

import pytest

from conftest import BIN, call, free_port, http, recv_json, run, wait_port
from services import MariaDB, Redis, have

# The module's cluster (MariaDB, Redis, five roles) starts within its first
# test; under the sanitizers on a busy machine that alone can take 20 s.
pytestmark = [pytest.mark.skipif(not (have("redis-server") and have("mariadbd")),
                                 reason="redis-server and mariadb-server are not installed"),
              pytest.mark.timeout(120)]


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
def running_cluster(tmp, notifier_extra=()):
    """One publisher, notifiers a and b, two consumers on a throwaway Redis
    and MariaDB; every role must exit 0 on SIGTERM at the end."""
    redis, maria = Redis(tmp), MariaDB(tmp)
    common = ["--db", maria.url, "--redis", redis.url]
    roles = {}
    try:
        api = free_port()
        roles["publisher"] = Role(tmp, "publisher", "publisher", *common,
                                  "--api-addr", f"127.0.0.1:{api}")
        wait_port(api, roles["publisher"].proc, roles["publisher"].log)
        ws = {}
        for node in ("a", "b"):
            ws[node] = free_port()
            # Every notifier shares the resume secret, so a connection
            # resumes on either (docs/recovery.md).
            roles[node] = Role(tmp, f"notifier-{node}", "notifier", *common, "--node-id", node,
                               "--ws-addr", f"127.0.0.1:{ws[node]}",
                               "--resume-secret", "scaleout-test-secret", *notifier_extra)
            wait_port(ws[node], roles[node].proc, roles[node].log)
        for i in (1, 2):
            roles[f"consumer{i}"] = Role(tmp, f"consumer{i}", "consumer", "--redis", redis.url)
        yield {"api": f"http://127.0.0.1:{api}", "api_port": api, "ws": ws, "maria": maria,
               "redis": redis, "roles": roles}
        for name, role in roles.items():
            assert role.stop() == 0, f"{name} exited badly:\n{role.log.read_text()[-4000:]}"
    finally:
        for role in roles.values():
            if role.proc.poll() is None:
                role.proc.kill()
        redis.stop()
        maria.stop()


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("scaleout")) as c:
        yield c


@pytest.fixture
def cluster(module_cluster):
    """The module's cluster, handed to the next test without the connections
    this one left: a test that failed or ran out of time skipped its closes,
    and a client gone without a clean close stays detached on its node for
    the resume window (60 s), listed in MariaDB. Each is disconnected through
    the API (DELETE kicks a detached one too, docs/api.md)."""
    yield module_cluster
    for cid in module_cluster["maria"].query("SELECT id FROM connections").split():
        status, body = call(module_cluster["api_port"], "DELETE", f"/api/v1/connections/{cid}")
        assert status in (204, 404), (cid, status, body)


async def connect_to(port):
    import websockets
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws")
    hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return ws, hello["connectionID"]


def test_clients_on_two_notifiers_get_every_message_once(cluster):
    api = cluster["api"]

    async def go():
        clients = []
        try:
            for node in ("a", "a", "b", "b"):
                ws, cid = await connect_to(cluster["ws"][node])
                clients.append((ws, cid, node))
            await asyncio.sleep(0.3)  # the notifiers register the connections in Redis
            for ws, cid, node in clients:
                r = await asyncio.to_thread(http, "POST", f"{api}/api/v1/subscribes", "topic=t",
                                            f"connectionID={cid}")
                assert r.status == 201, r
            # one client of node a also on topic u
            r = await asyncio.to_thread(http, "POST", f"{api}/api/v1/subscribes", "topic=u",
                                        f"connectionID={clients[0][1]}")
            assert r.status == 201
            # The fan-out across notifiers is the point, not the client: the
            # 30 publishes go through http.client (an HTTPie process each,
            # ~0.9 s at load 6, spent the whole budget on them).
            sent = {"t": [], "u": []}
            for i in range(30):
                topic = "u" if i % 5 == 0 else "t"
                status, body = await asyncio.to_thread(call, cluster["api_port"], "POST",
                                                       "/api/v1/messages",
                                                       {"topic": topic, "content": str(i)})
                assert status == 201, body
                sent[topic].append(body["id"])
            for index, (ws, cid, node) in enumerate(clients):
                expected = sent["t"] + (sent["u"] if index == 0 else [])
                got = [(await recv_json(ws, timeout=10))["message"]["id"] for _ in expected]
                assert sorted(got) == sorted(expected), node
                # per topic, in publish order, and nothing more
                assert [g for g in got if g in sent["t"]] == sent["t"]
                try:
                    extra = await asyncio.wait_for(ws.recv(), 0.5)
                    raise AssertionError(f"duplicate or stray frame {extra}")
                except asyncio.TimeoutError:
                    pass
        finally:
            for ws, _, _ in clients:
                await ws.close()
    # The budget, from the work: 5 HTTPie calls at up to ~3 s each on a busy
    # machine, 30 publishes and 4 x 30 frames (~10 s there), 4 x 0.5 s of
    # silence, 4 closes; the module's 120 s also covers starting the cluster.
    run(go(), timeout=50)


def test_notification_and_unsubscribe_reach_the_right_notifier(cluster):
    api = cluster["api"]

    async def go():
        ws, cid = await connect_to(cluster["ws"]["b"])
        await asyncio.sleep(0.3)
        r = await asyncio.to_thread(http, "POST", f"{api}/api/v1/notification",
                                    f"connectionID={cid}", "payload=hello b")
        assert r.status == 202
        assert await asyncio.wait_for(ws.recv(), 5) == "hello b"
        await asyncio.to_thread(http, "POST", f"{api}/api/v1/subscribes", "topic=v",
                                f"connectionID={cid}")
        r = await asyncio.to_thread(http, "DELETE", f"{api}/api/v1/subscribes",
                                    f"connectionID={cid}")
        assert r.status == 204
        await asyncio.sleep(0.3)
        await asyncio.to_thread(http, "POST", f"{api}/api/v1/messages", "topic=v", "content=x")
        try:
            extra = await asyncio.wait_for(ws.recv(), 1.0)
            raise AssertionError(f"frame after unsubscribe: {extra}")
        except asyncio.TimeoutError:
            pass
        await ws.close()
    run(go())


def test_a_closed_connection_leaves_nothing_in_mariadb_or_redis(cluster):
    api = cluster["api"]

    async def go():
        ws, cid = await connect_to(cluster["ws"]["a"])
        await asyncio.sleep(0.3)
        await asyncio.to_thread(http, "POST", f"{api}/api/v1/subscribes", "topic=w",
                                f"connectionID={cid}")
        await ws.close()
        return cid
    cid = run(go())
    import time
    for _ in range(30):
        rows = cluster["maria"].query(f"SELECT COUNT(*) FROM subscriptions WHERE connection_id='{cid}'")
        if rows.strip() == "0":
            break
        time.sleep(0.1)
    assert rows.strip() == "0"
    assert http("POST", f"{api}/api/v1/subscribes", "topic=w",
                f"connectionID={cid}").status == 404


def test_a_connection_resumes_on_the_other_notifier(cluster):
    """A client drops from notifier a and resumes on b within the window:
    same connectionID, its subscription, what it missed, then live."""
    import websockets
    api = cluster["api"]

    def publish(content):
        r = http("POST", f"{api}/api/v1/messages", "topic=resume-x", f"content={content}")
        assert r.status == 201
        return r.json["id"]

    async def messages(ws, count):
        got = []
        while len(got) < count:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if frame["type"] == "message":
                got.append(frame["message"]["id"])
        return got

    async def go():
        ws = await websockets.connect(f"ws://127.0.0.1:{cluster['ws']['a']}/api/v1/ws")
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        cid, token = hello["connectionID"], hello["resumeToken"]
        r = await asyncio.to_thread(http, "POST", f"{api}/api/v1/subscribes", "topic=resume-x",
                                    f"connectionID={cid}")
        assert r.status == 201
        before = [await asyncio.to_thread(publish, f"m{i}") for i in range(2)]
        assert await messages(ws, 2) == before
        ws.transport.abort()
        await asyncio.sleep(0.5)
        missed = [await asyncio.to_thread(publish, f"n{i}") for i in range(3)]
        ws = await websockets.connect(f"ws://127.0.0.1:{cluster['ws']['b']}/api/v1/ws"
                                      f"?resume={token}&lastID={before[-1]}")
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["resumed"] is True and hello["connectionID"] == cid, hello
        assert hello["replayed"] == 3
        assert await messages(ws, 3) == missed
        live = await asyncio.to_thread(publish, "live")
        assert await messages(ws, 1) == [live]
        r = await asyncio.to_thread(http, "GET", f"{api}/api/v1/connections/{cid}")
        assert r.json["node"] == "b" and r.json["topics"] == ["resume-x"]
        await ws.close()

    # 8 HTTPie calls (the API as a backend calls it), ~1-2 s each on a busy
    # machine, and a resume: 50 s is the budget of that work, not a guess.
    run(go(), timeout=50)
    maria = cluster["maria"]
    assert maria.query("SELECT COUNT(*) FROM connections WHERE node='a'").strip() == "0"


def test_a_killed_notifier_is_cleaned_up_by_the_survivors(tmp_path):
    """kill -9 one notifier: within three heartbeats its subscriptions are gone
    from MariaDB and its connections from the directory."""
    import time
    redis, maria = Redis(tmp_path), MariaDB(tmp_path)
    common = ["--db", maria.url, "--redis", redis.url, "--heartbeat-interval", "300ms"]
    roles = []
    try:
        api = free_port()
        publisher = Role(tmp_path, "publisher", "publisher", *common,
                         "--api-addr", f"127.0.0.1:{api}")
        roles.append(publisher)
        wait_port(api, publisher.proc, publisher.log)
        ports = {}
        notifiers = {}
        for node in ("x", "y"):
            ports[node] = free_port()
            notifiers[node] = Role(tmp_path, f"notifier-{node}", "notifier", *common,
                                   "--node-id", node, "--ws-addr", f"127.0.0.1:{ports[node]}")
            roles.append(notifiers[node])
            wait_port(ports[node], notifiers[node].proc, notifiers[node].log)

        async def go():
            ws, cid = await connect_to(ports["y"])
            await asyncio.sleep(0.5)
            r = await asyncio.to_thread(http, "POST", f"http://127.0.0.1:{api}/api/v1/subscribes",
                                        "topic=k", f"connectionID={cid}")
            assert r.status == 201
            notifiers["y"].proc.kill()  # kill -9: no cleanup of its own
            notifiers["y"].proc.wait(5)
            ws.transport.abort()
            return cid
        cid = run(go())
        assert maria.query(f"SELECT COUNT(*) FROM subscriptions WHERE connection_id='{cid}'"
                           ).strip() == "1"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if maria.query(f"SELECT COUNT(*) FROM subscriptions WHERE connection_id='{cid}'"
                           ).strip() == "0":
                break
            time.sleep(0.1)
        assert maria.query(f"SELECT COUNT(*) FROM subscriptions WHERE connection_id='{cid}'"
                           ).strip() == "0", notifiers["x"].log.read_text()
        assert http("POST", f"http://127.0.0.1:{api}/api/v1/subscribes", "topic=k",
                    f"connectionID={cid}").status == 404
        assert "stopped beating" in notifiers["x"].log.read_text()
        # and a client can reconnect to the survivor
        async def again():
            ws, _ = await connect_to(ports["x"])
            await ws.close()
        run(again())
    finally:
        for role in roles:
            if role.proc.poll() is None:
                role.stop()
        redis.stop()
        maria.stop()


def test_client_side_subscribe_and_disconnect_across_processes(cluster, tmp_path):
    """A notifier with client tokens: the client's own subscribe is routed to
    its node like an API one, the publisher sees its user, and DELETE
    reaches the node through Redis (close 4000)."""
    import base64
    import hashlib
    import hmac
    import time
    import urllib.request
    import websockets

    secret = "scaleout-secret"
    port = free_port()
    redis, maria = cluster["redis"], cluster["maria"]
    node = Role(tmp_path, "notifier-c", "notifier", "--db", maria.url, "--redis", redis.url,
                "--node-id", "c", "--ws-addr", f"127.0.0.1:{port}", "--jwt-secret", secret)
    wait_port(port, node.proc, node.log)

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    signing = b64(b'{"alg":"HS256"}') + "." + b64(json.dumps(
        {"sub": "carol", "exp": now + 300, "topics": ["so.*"]}).encode())
    token = signing + "." + b64(hmac.new(secret.encode(), signing.encode(),
                                         hashlib.sha256).digest())

    def api(method, path, body=None):
        req = urllib.request.Request(cluster["api"] + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                data = resp.read()
                return resp.status, json.loads(data) if data else None
        except urllib.error.HTTPError as e:
            return e.code, None

    async def go():
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws?token={token}")
        cid = json.loads(await asyncio.wait_for(ws.recv(), 5))["connectionID"]
        await ws.send(json.dumps({"type": "subscribe", "topic": "so.room"}))
        assert await recv_json(ws) == {"type": "subscribed", "topic": "so.room"}
        await ws.send(json.dumps({"type": "subscribe", "topic": "t"}))
        assert (await recv_json(ws))["code"] == "forbidden"
        status, _ = await asyncio.to_thread(api, "POST", "/api/v1/publish",
                                            {"topic": "so.room", "content": "hi"})
        assert status == 201
        got = await recv_json(ws, timeout=10)
        assert got["type"] == "message" and got["message"]["content"] == "hi"
        status, info = await asyncio.to_thread(api, "GET", f"/api/v1/connections/{cid}")
        assert status == 200 and info["user"] == "carol" and info["node"] == "c"
        assert info["topics"] == ["so.room"]
        await asyncio.sleep(0.3)  # the node registered the connection in Redis
        status, _ = await asyncio.to_thread(api, "DELETE", f"/api/v1/connections/{cid}")
        assert status == 204
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4000

    try:
        run(go())
    finally:
        assert node.stop() == 0, node.log.read_text()


def test_a_client_unsubscribe_is_not_overtaken_by_an_api_subscribe_before_it(cluster, tmp_path):
    """An API subscribe is answered once its command is in the node's
    stream, before the node applied it. The client's own unsubscribe after
    that answer must take effect after it: with the node stopped meanwhile,
    it used to be applied first (the node read its socket before its stream)
    and the subscribe then, so the client got messages after it was told
    "unsubscribed" (the checker's unsubscribed_delivery)."""
    import urllib.request
    import websockets

    secret = "scaleout-secret"
    port = free_port()
    redis, maria = cluster["redis"], cluster["maria"]
    node = Role(tmp_path, "notifier-d", "notifier", "--db", maria.url, "--redis", redis.url,
                "--node-id", "d", "--ws-addr", f"127.0.0.1:{port}", "--jwt-secret", secret)
    wait_port(port, node.proc, node.log)
    token = jwt_hs256(secret, {"sub": "dana", "exp": int(time.time()) + 300, "topics": ["so.*"]})

    def api(method, path, body=None):
        req = urllib.request.Request(cluster["api"] + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status

    async def go():
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws?token={token}")
        cid = json.loads(await asyncio.wait_for(ws.recv(), 5))["connectionID"]
        await asyncio.sleep(0.3)  # the node registered the connection in Redis
        node.proc.send_signal(signal.SIGSTOP)
        try:
            # A command first: the node's pending read of its stream returns
            # with it, so the subscribe is not in that answer but in the
            # next read, while the client's message waits in its socket.
            status = await asyncio.to_thread(api, "POST", "/api/v1/notification",
                                             {"connectionID": cid, "payload": "first"})
            assert status == 202
            status = await asyncio.to_thread(api, "POST", "/api/v1/subscribes",
                                             {"topic": "so.late", "connectionID": cid})
            assert status == 201
            await ws.send(json.dumps({"type": "unsubscribe", "topic": "so.late"}))
            await asyncio.sleep(0.2)
        finally:
            node.proc.send_signal(signal.SIGCONT)
        assert await asyncio.wait_for(ws.recv(), 10) == "first"
        assert await recv_json(ws, timeout=10) == {"type": "unsubscribed", "topic": "so.late"}
        status = await asyncio.to_thread(api, "POST", "/api/v1/messages",
                                         {"topic": "so.late", "content": "not for you"})
        assert status == 201
        try:
            extra = await asyncio.wait_for(ws.recv(), 1.5)
            raise AssertionError(f"a message after the unsubscribe was answered: {extra}")
        except asyncio.TimeoutError:
            pass
        await ws.close()

    try:
        run(go())
    finally:
        assert node.stop() == 0, node.log.read_text()


def jwt_hs256(secret, claims):
    import base64
    import hashlib
    import hmac

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing = b64(b'{"alg":"HS256"}') + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(hmac.new(secret.encode(), signing.encode(),
                                        hashlib.sha256).digest())


def test_a_publisher_says_where_its_notifiers_are_only_when_told(cluster, tmp_path):
    """A scale-out publisher has no WebSocket port: GET /api/v1/info says
    wsURL null (the CLI then falls back to port 9001 with a note), and with
    --public-ws-url it names the notifiers, so `houston sub --server` finds
    them with nothing else said (issue 19 item 4)."""
    status, info = call(cluster["api_port"], "GET", "/api/v1/info")
    assert status == 200, info
    assert info["mode"] == "scale-out" and info["wsURL"] is None and info["sseURL"] is None
    assert info["roles"] == ["publisher"]
    assert info["auth"]["clientToken"] is None
    api2 = free_port()
    public = f"ws://127.0.0.1:{cluster['ws']['a']}"
    told = Role(tmp_path, "publisher-told", "publisher", "--db", cluster["maria"].url,
                "--redis", cluster["redis"].url, "--api-addr", f"127.0.0.1:{api2}",
                "--public-ws-url", public)
    sub = None
    try:
        wait_port(api2, told.proc, told.log)
        status, info = call(api2, "GET", "/api/v1/info")
        assert info["wsURL"] == public + "/api/v1/ws", info
        assert info["sseURL"] == f"http://127.0.0.1:{cluster['ws']['a']}/api/v1/sse"
        env = {"PATH": "/usr/bin:/bin"}
        sub = subprocess.Popen([BIN, "sub", "--server", f"http://127.0.0.1:{api2}", "so.found"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(200):
            status, subs = call(api2, "GET", "/api/v1/subscribes?topic=so.found")
            if status == 200 and subs:
                break
            assert sub.poll() is None, sub.stderr.read()
            time.sleep(0.05)
        status, sent = call(api2, "POST", "/api/v1/publish",
                            {"topic": "so.found", "content": "via the public URL"})
        assert status == 201, sent
        ready, _, _ = select.select([sub.stdout], [], [], 15)
        line = sub.stdout.readline() if ready else ""
        assert line and json.loads(line) == sent, sub.stderr.read() if sub.poll() else line
    finally:
        if sub:
            sub.send_signal(signal.SIGINT)
            sub.communicate(timeout=10)
        assert told.stop() == 0, told.log.read_text()


def test_a_resume_by_ack_after_the_node_was_stopped_replays_what_it_missed(cluster):
    """The CI's checker run on a Redis Cluster once missed messages published
    while a notifier was stopped, to a client that then dropped and resumed
    by its ack (no lastID). This is that sequence on its own: the resume
    replays from the ack the node took before it stopped."""
    import websockets
    api = cluster["api"]
    node = cluster["roles"]["a"]

    def publish(topic, content):
        status, body = call(cluster["api_port"], "POST", "/api/v1/messages",
                            {"topic": topic, "content": content})
        assert status == 201
        return body["id"]

    async def messages(ws, count, timeout=5):
        got = []
        while len(got) < count:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if frame["type"] == "message":
                got.append(frame["message"]["id"])
        return got

    async def go():
        ws = await websockets.connect(f"ws://127.0.0.1:{cluster['ws']['a']}/api/v1/ws")
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        cid, token = hello["connectionID"], hello["resumeToken"]
        await asyncio.sleep(0.3)
        for t in ("ack-x", "ack-y"):
            status, _ = await asyncio.to_thread(call, cluster["api_port"], "POST",
                                                "/api/v1/subscribes",
                                                {"topic": t, "connectionID": cid})
            assert status == 201
        before = [await asyncio.to_thread(publish, "ack-x", f"m{i}") for i in range(2)]
        assert await messages(ws, 2) == before
        await ws.send(json.dumps({"type": "ack", "id": before[-1]}))
        await asyncio.sleep(0.2)
        node.proc.send_signal(signal.SIGSTOP)
        try:
            missed = [await asyncio.to_thread(publish, "ack-x", f"n{i}") for i in range(5)]
            await asyncio.sleep(0.5)
            ws.transport.abort()
            await asyncio.sleep(0.2)
        finally:
            node.proc.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.3)
        ws = await websockets.connect(f"ws://127.0.0.1:{cluster['ws']['a']}/api/v1/ws"
                                      f"?resume={token}")
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["resumed"] is True and hello["connectionID"] == cid, hello
        got = await messages(ws, 5)
        assert got == missed, (hello, got, missed)
        await ws.close()

    run(go(), timeout=50)
