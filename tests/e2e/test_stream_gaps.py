"""No silent gaps in the Redis streams (docs/recovery.md, "Gaps"). A stream
that loses entries before they were read - a notifier's command stream
trimmed while the notifier was stalled, the event stream trimmed while the
consumers were down, Redis restarted without persistence - must not leave a
subscriber silently short: it gets every message, or it is closed with 1001
and, resuming from the last id it got, gets the rest exactly once.
Every role is a separate process on a throwaway MariaDB and Redis."""
import asyncio
import json
import re
import signal
import socket
import time

import pytest

from conftest import publish_requests
from services import have
from test_scaleout_failures import cluster_factory, collect, subscribe_all  # noqa: F401

pytestmark = [pytest.mark.skipif(not (have("redis-server") and have("mariadbd")),
                                 reason="redis-server and mariadb-server are not installed"),
              pytest.mark.timeout(120)]


def publish_pipelined(cluster, topic, count, per_connection=2000):
    """Publishes count messages, pipelined on a few connections; returns their
    ids in publish order."""
    ids = []
    for start in range(0, count, per_connection):
        n = min(per_connection, count - start)
        with socket.create_connection(("127.0.0.1", cluster.api_port), timeout=60) as sock:
            sock.sendall(publish_requests({"topic": topic, "content": f"m{start + i}"}
                                          for i in range(n)))
            data = b""
            while len(ids) < start + n:
                head_end = data.find(b"\r\n\r\n")
                if head_end >= 0:
                    head = data[:head_end].decode()
                    length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                                  if line.lower().startswith("content-length:"))
                    if len(data) >= head_end + 4 + length:
                        assert head.startswith("HTTP/1.1 201"), head
                        ids.append(json.loads(data[head_end + 4:head_end + 4 + length])["id"])
                        data = data[head_end + 4 + length:]
                        continue
                chunk = sock.recv(1 << 16)
                assert chunk, "the publisher closed the connection"
                data += chunk
    return ids


def entries_added(cluster, stream):
    out = cluster.redis.cli("XINFO", "STREAM", stream).split("\n")
    return int(out[out.index("entries-added") + 1])


def wait_entries(cluster, stream, want, seconds=60):
    deadline = time.monotonic() + seconds
    while entries_added(cluster, stream) < want:
        assert time.monotonic() < deadline, f"{stream} never reached {want} entries"
        time.sleep(0.1)


async def open_ws(cluster, query=""):
    import websockets
    ws = await websockets.connect(f"ws://127.0.0.1:{cluster.ws['a']}/api/v1/ws{query}",
                                  max_queue=None)
    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return ws, hello


async def read_until_closed(ws, want, seconds):
    """Message ids until want arrived, the connection closed, or the time is up;
    returns (ids, close code or None)."""
    import websockets
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            return got, None
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            return got, None
        except websockets.ConnectionClosed as e:
            return got, e.rcvd.code if e.rcvd else None
        if frame.get("type") == "message":
            got.append(frame["message"]["id"])
    return got, None


async def made_whole(cluster, ws, hello, first, ids, seconds=30):
    """The subscriber after the loss: it gets every id of ids, or is closed with
    1001 and, resumed from the last id it got (again if it is asked to again),
    gets the rest; each exactly once and in order, and nothing more. Returns
    the first close code (None: it was never closed)."""
    token, got, codes = hello["resumeToken"], [], []
    for _ in range(6):
        more, code = await read_until_closed(ws, len(ids) - len(got), seconds)
        got += more
        if code is None and len(got) >= len(ids):
            extra, code = await read_until_closed(ws, 1, 0.5)  # nothing more, or a close
            assert extra == [], f"a message more than expected: {extra}"
        if code is None:
            break
        assert code == 1001, f"closed with {code}\n{cluster.logs()}"
        codes.append(code)
        ws, hello = await open_ws(cluster, f"?resume={token}&lastID={got[-1] if got else first}")
        assert hello["resumed"] is True and "truncated" not in hello, hello
        token = hello["resumeToken"]
    else:
        raise AssertionError("still asked to resume after five resumes")
    await ws.close()
    assert got == ids, (f"silently short: {len(got)} received ({len(set(got))} distinct) of "
                        f"{len(ids)}, closes: {codes}\n{cluster.logs()}")
    return codes[0] if codes else None


@pytest.mark.parametrize("cap,count", [(1000, 3000), (None, 15000)],
                         ids=["node-stream-max-1000", "default-cap"])
def test_a_notifier_stalled_past_its_stream_cap_is_not_silently_short(cluster_factory, cap,
                                                                       count):
    """The issue's reproduction: SIGSTOP the notifier, publish more messages to
    its subscriber than its command stream keeps, SIGCONT. (The default cap,
    10,000, with 15,000 messages; and --node-stream-max 1000 with 3,000.)"""
    extra = ("--resume-max-replay", "20000")
    if cap:
        extra += ("--node-stream-max", str(cap))
    cluster = cluster_factory(notifiers=("a",), consumers=1, extra=extra)

    async def go():
        ws, hello = await open_ws(cluster)
        await subscribe_all(cluster, [(ws, hello["connectionID"])], "stalled")
        status, first = await asyncio.to_thread(cluster.request, "POST", "/api/v1/messages",
                                                {"topic": "stalled", "content": "first"})
        assert status == 201
        assert await collect(ws, 1, time.monotonic() + 5) == [first["id"]]
        notifier = cluster.roles["notifier-a"].proc
        notifier.send_signal(signal.SIGSTOP)
        try:
            ids = await asyncio.to_thread(publish_pipelined, cluster, "stalled", count)
            # subscribe, first, then one command per message
            await asyncio.to_thread(wait_entries, cluster, "houston:{n:a}:stream", count + 2)
        finally:
            notifier.send_signal(signal.SIGCONT)
        return await made_whole(cluster, ws, hello, first["id"], ids)
    code = asyncio.run(go())
    assert code == 1001  # more than the cap: it cannot have had them all live
    assert "gap in houston:{n:a}:stream" in cluster.roles["notifier-a"].log.read_text()


def test_consumers_down_past_the_event_stream_cap_do_not_leave_subscribers_short(
        cluster_factory):
    """The consumer is stopped, more events than --event-stream-max are
    appended, the consumer starts again: the subscriber is closed with 1001
    (every notifier is told) and resumes to every message, once."""
    cluster = cluster_factory(notifiers=("a",), consumers=1,
                              extra=("--event-stream-max", "1000"))

    async def go():
        ws, hello = await open_ws(cluster)
        await subscribe_all(cluster, [(ws, hello["connectionID"])], "no-consumer")
        status, first = await asyncio.to_thread(cluster.request, "POST", "/api/v1/messages",
                                                {"topic": "no-consumer", "content": "first"})
        assert status == 201
        assert await collect(ws, 1, time.monotonic() + 5) == [first["id"]]
        assert cluster.roles["consumer1"].stop() == 0
        ids = await asyncio.to_thread(publish_pipelined, cluster, "no-consumer", 3000)
        cluster.start("consumer2", "consumer", "--redis", cluster.redis.url,
                      "--event-stream-max", "1000")
        return await made_whole(cluster, ws, hello, first["id"], ids)
    assert asyncio.run(go()) == 1001
    # The topic's partition stream (houston:{p<p>}:events) had the gap.
    assert re.search(r"gap in houston:\{p\d+\}:events", cluster.roles["consumer2"].log.read_text())
    assert re.search(r"gap in houston:\{p\d+\}:events",
                     cluster.roles["notifier-a"].log.read_text())


def test_redis_restarted_without_persistence_does_not_leave_subscribers_short(
        cluster_factory):
    """Events wait in the stream (the consumer is stopped) when Redis is
    restarted without persistence: they are gone with it. The subscriber is
    closed with 1001 and resumes to every message, once."""
    cluster = cluster_factory(notifiers=("a",), consumers=1)

    async def go():
        ws, hello = await open_ws(cluster)
        await subscribe_all(cluster, [(ws, hello["connectionID"])], "restarted")
        status, first = await asyncio.to_thread(cluster.request, "POST", "/api/v1/messages",
                                                {"topic": "restarted", "content": "first"})
        assert status == 201
        assert await collect(ws, 1, time.monotonic() + 5) == [first["id"]]
        consumer = cluster.roles["consumer1"].proc
        consumer.send_signal(signal.SIGSTOP)
        try:
            ids = await asyncio.to_thread(publish_pipelined, cluster, "restarted", 200)
            await asyncio.to_thread(cluster.redis.kill)
            await asyncio.to_thread(cluster.redis.start)
        finally:
            consumer.send_signal(signal.SIGCONT)
        return await made_whole(cluster, ws, hello, first["id"], ids)
    assert asyncio.run(go()) == 1001
