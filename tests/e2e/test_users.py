"""Users (issue 17 item 5): the user of a connection is its token's "sub";
POST /api/v1/notification {"userID"} reaches every connection of the user,
GET /api/v1/users/{id}/connections lists them and DELETE disconnects them
all (close 4000, not resumable) - embedded on SQLite and on MariaDB, and
in the scale-out mode across two notifiers."""
import asyncio
import json
import time
import urllib.parse
import uuid

import pytest
import websockets

from conftest import Server, call, free_port, recv_json, run, wait_port
from services import MariaDB, Redis, have
from test_security import SECRET, claims, make_token

SHAPE = {"id", "user", "connectedAt", "topics", "node", "lastAck", "address"}


def token_of(user):
    return make_token(claims(sub=user))


def user_path(user):
    return "/api/v1/users/" + urllib.parse.quote(user, safe="") + "/connections"


def new_user():
    return "u-" + uuid.uuid4().hex[:10]


async def ws_as(port, user, extra=""):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws?token={token_of(user)}{extra}")
    hello = await recv_json(ws)
    assert hello["type"] == "connected", hello
    return ws, hello


class Sse:
    """An event stream read from a raw socket (asyncio)."""

    async def open(self, port, user):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write((f"GET /api/v1/sse?token={token_of(user)} HTTP/1.1\r\n"
                           f"Host: 127.0.0.1\r\n\r\n").encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200"), head
        event, data = await self.event()
        assert event == "connected", (event, data)
        self.id = json.loads(data)["connectionID"]
        return self

    async def event(self, timeout=5):
        """The next event's name and data (comments skipped); (None, None)
        when the stream ended."""
        name, data = None, []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                return None, None
            line = line.decode().rstrip("\r\n")
            if line == "" and (name or data):
                return name, "\n".join(data)
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" ") if line.startswith("data: ") else line[5:])

    def close(self):
        self.writer.close()


def listed(port, user, count, deadline=10.0):
    """The user's connections once count are listed (rows are written right
    after the connected frame; another process sees them a moment later)."""
    end = time.monotonic() + deadline
    while True:
        status, body = call(port, "GET", user_path(user))
        assert status == 200, body
        if len(body["connections"]) == count or time.monotonic() > end:
            return body
        time.sleep(0.05)


async def expect_silence(ws, timeout=0.3):
    try:
        frame = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected frame {frame}")


async def expect_closed_4000(ws):
    with pytest.raises(websockets.exceptions.ConnectionClosed):
        while True:  # frames queued before the close may come first
            await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 4000 and ws.close_reason == "disconnected by server"


# ---- embedded (SQLite and MariaDB) ------------------------------------------------------

@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def srv(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("users")
    maria = None
    if request.param == "mariadb":
        if not have("mariadbd"):
            pytest.skip("mariadb-server is not installed")
        maria = MariaDB(tmp)
    mp = pytest.MonkeyPatch()
    if maria:
        mp.setenv("HOUSTON_TEST_DB_URL", maria.url)
    else:
        mp.delenv("HOUSTON_TEST_DB_URL", raising=False)
    try:
        server = Server(tmp, "--jwt-secret", SECRET, "--ping-interval", "30s").start()
    finally:
        mp.undo()
    yield server
    code = server.stop()
    if maria:
        maria.stop()
    assert code == 0, server.logs()


def test_a_user_notification_reaches_every_connection_of_the_user_and_no_other(srv):
    alice, bob = new_user(), new_user()

    async def go():
        a1, _ = await ws_as(srv.ws_port, alice)
        a2, _ = await ws_as(srv.ws_port, alice)
        a3 = await Sse().open(srv.ws_port, alice)
        b1, bob_hello = await ws_as(srv.ws_port, bob)
        try:
            assert len(listed(srv, alice, 3)["connections"]) == 3
            status, body = call(srv, "POST", "/api/v1/notification",
                                {"userID": alice, "payload": "hi alice"})
            assert status == 202 and body is None, body
            assert await asyncio.wait_for(a1.recv(), 5) == "hi alice"
            assert await asyncio.wait_for(a2.recv(), 5) == "hi alice"
            assert await a3.event() == ("notification", "hi alice")
            await expect_silence(b1)
            # connectionID still targets one connection
            status, body = call(srv, "POST", "/api/v1/notification",
                                {"connectionID": bob_hello["connectionID"], "payload": "hi bob"})
            assert status == 202, body
            assert await asyncio.wait_for(b1.recv(), 5) == "hi bob"
            await expect_silence(a1, 0.2)
        finally:
            for ws in (a1, a2, b1):
                await ws.close()
            a3.close()
    run(go())


def test_a_user_notification_is_404_without_connections_and_400_when_ambiguous(srv):
    status, body = call(srv, "POST", "/api/v1/notification",
                        {"userID": new_user(), "payload": "x"})
    assert status == 404 and body["error"]["code"] == "not_found", body
    ulid = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
    for note, code, field in (({"userID": "a", "connectionID": ulid, "payload": "x"},
                               "invalid_field", "userID"),
                              ({"payload": "x"}, "missing_field", "userID"),
                              ({"userID": "", "payload": "x"}, "invalid_field", "userID"),
                              ({"userID": 7, "payload": "x"}, "invalid_field", "userID"),
                              ({"userID": "u" * 257, "payload": "x"}, "invalid_field", "userID"),
                              ({"userID": "a"}, "missing_field", "payload")):
        status, body = call(srv, "POST", "/api/v1/notification", note)
        assert status == 400 and body["error"]["code"] == code, (note, body)
        assert field in body["error"]["message"], (note, body)


def test_a_users_connections_are_listed_like_a_connection_and_paged(srv, topic):
    alice = "alice " + new_user() + "/é"  # any string is a sub: percent-encoded in the path

    async def go():
        socks = [await ws_as(srv.ws_port, alice) for _ in range(3)]
        try:
            ids = sorted(hello["connectionID"] for _, hello in socks)
            status, _ = call(srv, "POST", "/api/v1/subscribes",
                             {"topic": topic, "connectionID": ids[1]})
            assert status == 201
            body = listed(srv, alice, 3)
            assert body["next"] is None
            conns = body["connections"]
            assert [c["id"] for c in conns] == ids  # in id order
            for c in conns:
                assert set(c) == SHAPE and c["user"] == alice and c["node"] == "local", c
                status, one = call(srv, "GET", f"/api/v1/connections/{c['id']}")
                assert status == 200 and one == c  # the same element as the single read
            assert [c["topics"] for c in conns] == [[], [topic], []]
            status, page = call(srv, "GET", user_path(alice) + "?limit=2")
            assert [c["id"] for c in page["connections"]] == ids[:2] and page["next"] == ids[1]
            status, page = call(srv, "GET", user_path(alice) + f"?limit=2&after={page['next']}")
            assert [c["id"] for c in page["connections"]] == ids[2:] and page["next"] is None
            for query in ("?limit=0", "?limit=1001", "?limit=x", "?after=nope"):
                status, err = call(srv, "GET", user_path(alice) + query)
                assert status == 400 and err["error"]["code"] == "invalid_field", (query, err)
        finally:
            for ws, _ in socks:
                await ws.close()
    run(go())
    # an unknown user: 200 and an empty list (a user exists only through
    # its connections); a bad encoding or a NUL: 400
    status, body = call(srv, "GET", user_path(new_user()))
    assert status == 200 and body == {"connections": [], "next": None}
    for bad in ("%zz", "a%00b", "%4"):
        status, err = call(srv, "GET", f"/api/v1/users/{bad}/connections")
        assert status == 400 and err["error"]["code"] == "invalid_field", (bad, err)


def test_disconnecting_a_user_closes_every_connection_with_4000_and_none_resumes(srv):
    alice, bob = new_user(), new_user()

    async def go():
        a1, h1 = await ws_as(srv.ws_port, alice)
        a2, h2 = await ws_as(srv.ws_port, alice)
        a3 = await Sse().open(srv.ws_port, alice)
        # a detached one (within its resume window) goes too
        a4, h4 = await ws_as(srv.ws_port, alice)
        a4.transport.abort()
        b1, _ = await ws_as(srv.ws_port, bob)
        try:
            assert len(listed(srv, alice, 4)["connections"]) == 4
            status, body = call(srv, "DELETE", user_path(alice))
            assert status == 204 and body is None, body
            # gone from the 204 on
            status, body = call(srv, "GET", user_path(alice))
            assert body == {"connections": [], "next": None}, body
            for h in (h1, h2, h4):
                assert call(srv, "GET", f"/api/v1/connections/{h['connectionID']}")[0] == 404
            await expect_closed_4000(a1)
            await expect_closed_4000(a2)
            assert await a3.event() == (None, None)  # the stream ended
            for h in (h1, h4):
                ws, again = await ws_as(srv.ws_port, alice, f"&resume={h['resumeToken']}")
                await ws.close()
                assert again["resumed"] is False and again["connectionID"] != h["connectionID"]
            # bob is untouched
            status, _ = call(srv, "POST", "/api/v1/notification", {"userID": bob, "payload": "b"})
            assert status == 202
            assert await asyncio.wait_for(b1.recv(), 5) == "b"
            # nothing left: still 204 (idempotent)
            assert len(listed(srv, alice, 0)["connections"]) == 0
            assert call(srv, "DELETE", user_path(alice))[0] == 204
        finally:
            await b1.close()
            a3.close()
    run(go())


def test_tokens_without_sub_are_refused_and_tokenless_connections_have_no_user(srv, tmp_path):
    async def refused():
        for bad in (make_token(claims(sub=None)), make_token(claims(sub=""))):
            with pytest.raises(websockets.exceptions.InvalidStatusCode) as info:
                await websockets.connect(f"{srv.ws_url}?token={bad}")
            assert info.value.status_code == 401
    run(refused())
    # without client tokens a connection has no user: no user reaches it
    plain = Server(tmp_path, "--ping-interval", "30s").start()

    async def tokenless():
        ws = await websockets.connect(plain.ws_url)
        hello = await recv_json(ws)
        try:
            await asyncio.sleep(0.2)
            status, info = call(plain, "GET", f"/api/v1/connections/{hello['connectionID']}")
            assert status == 200 and info["user"] is None
            for user in ("null", "None", ""):
                if user:
                    assert call(plain, "GET", user_path(user))[1]["connections"] == []
                status, body = call(plain, "POST", "/api/v1/notification",
                                    {"userID": user or "x", "payload": "p"})
                assert status == 404, body
            await expect_silence(ws)
        finally:
            await ws.close()
    try:
        run(tokenless())
    finally:
        assert plain.stop() == 0, plain.logs()


# ---- scale-out: two notifiers ---------------------------------------------------------

@pytest.mark.skipif(not (have("redis-server") and have("mariadbd")),
                    reason="redis-server and mariadb-server are not installed")
@pytest.mark.timeout(150)
def test_users_across_two_notifiers(tmp_path):
    from test_scaleout import running_cluster
    with running_cluster(tmp_path, notifier_extra=("--jwt-secret", SECRET)) as c:
        port, ws_port = c["api_port"], c["ws"]
        alice, bob = new_user(), new_user()

        async def go():
            # two connections on each notifier: alice a, a, b; bob b
            a1, h1 = await ws_as(ws_port["a"], alice)
            a2, h2 = await ws_as(ws_port["a"], alice)
            a3, h3 = await ws_as(ws_port["b"], alice)
            b1, _ = await ws_as(ws_port["b"], bob)
            try:
                conns = listed(port, alice, 3)["connections"]
                assert sorted(x["node"] for x in conns) == ["a", "a", "b"], conns
                await asyncio.sleep(0.3)  # the notifiers register them in Redis
                status, body = await asyncio.to_thread(
                    call, port, "POST", "/api/v1/notification",
                    {"userID": alice, "payload": "to alice"})
                assert status == 202, body
                for ws in (a1, a2, a3):
                    assert await asyncio.wait_for(ws.recv(), 10) == "to alice"
                await expect_silence(b1, 0.5)
                status, body = await asyncio.to_thread(
                    call, port, "POST", "/api/v1/notification",
                    {"userID": new_user(), "payload": "x"})
                assert status == 404 and body["error"]["code"] == "not_found", body
                status, body = await asyncio.to_thread(call, port, "DELETE", user_path(alice))
                assert status == 204, body
                assert (await asyncio.to_thread(call, port, "GET", user_path(alice)))[1] == {
                    "connections": [], "next": None}
                for ws in (a1, a2, a3):
                    await expect_closed_4000(ws)
                # not resumable, on either notifier
                for node, h in (("b", h1), ("a", h3)):
                    ws, again = await ws_as(ws_port[node], alice, f"&resume={h['resumeToken']}")
                    await ws.close()
                    assert again["resumed"] is False, again
                status, _ = await asyncio.to_thread(call, port, "POST", "/api/v1/notification",
                                                    {"userID": bob, "payload": "still here"})
                assert status == 202
                assert await asyncio.wait_for(b1.recv(), 10) == "still here"
            finally:
                await b1.close()
        run(go(), timeout=60)
