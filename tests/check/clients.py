"""The checker's clients: WebSocket and Server-Sent Events connections that
subscribe, unsubscribe, ack, read slowly, stop reading, reset, go half-open,
resume (same or other notifier), probe with stale and foreign tokens. Each
records what it sent and received, with times, in the run's model; the
checks are in check.py. All randomness from random.Random(seed, name)."""
import asyncio
import json
import random
import time

import wire
from model import Conn, Interval, Transport, now, ulid_floor

FRAME_TIMEOUT = 5.0


class Client:
    kind = "ws"

    def __init__(self, run, i):
        self.run, self.m, self.i = run, run.m, i
        self.name = f"{self.kind}{i}"
        self.rng = random.Random(f"{run.seed}-{run.t.name}-{self.name}")
        self.conn = None
        self.stream = None
        self.reader = None
        self.gate = asyncio.Event()
        self.gate.set()
        self.slow = 0.0
        self.pending = None
        self.frames_ok = True
        self.nodes = sorted(run.t.nodes)

    # -- connecting
    async def open_stream(self, node, query, headers=None):
        raise NotImplementedError

    async def connect(self, node, query="", headers=None):
        """(stream, hello) or None when the node did not answer."""
        try:
            stream, hello = await asyncio.wait_for(self.open_stream(node, query, headers),
                                                   FRAME_TIMEOUT * 2)
        except wire.HandshakeError as e:
            if e.status not in (503, 429):
                self.run.vio("handshake", f"{self.name}: upgrade on {node} answered {e}")
            return None
        except (OSError, wire.Closed, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ValueError, KeyError, IndexError):
            return None
        return stream, hello

    async def open_new(self):
        for attempt in range(20):
            if attempt:
                await asyncio.sleep(min(2.0, 0.2 * attempt))
            node = self.rng.choice(self.nodes)
            got = await self.connect(node)
            if got is None:
                continue
            stream, hello = got
            conn = Conn(self.m, hello["connectionID"], hello.get("resumeToken"), node, now(),
                        self.kind)
            conn.wall_start = time.time()
            self.attach(conn, stream)
            return True
        self.conn = None
        return False

    def attach(self, conn, stream):
        self.conn, self.stream = conn, stream
        self.gate.set()
        self.slow = 0.0
        self.frames_ok = True
        conn.impaired_since = None
        if hasattr(stream, "echo_close"):
            # Half the clients never answer a close frame (the server must
            # not wait for them: issue 13, finding 8).
            stream.echo_close = self.rng.random() < 0.5
        self.reader = asyncio.ensure_future(self.read_loop(stream, conn, conn.transport))

    def record(self, conn, tr, msg):
        t = now()
        conn.received.append((msg["id"], msg["topic"], tr.index, t))
        self.m.last_receipt = t

    # -- the life of a client
    async def life(self):
        try:
            await asyncio.sleep(self.rng.uniform(0, 1.0))
            if not await self.open_new():
                self.run.rep.notes.append(f"{self.name} could not connect")
                return
            while not self.m.settle:
                if self.reader.done():
                    await self.handle_end()
                    if self.conn is None:
                        return
                    continue
                names, weights = zip(*[(n, w) for n, w in self.actions()
                                       if n not in self.run.skip_actions])
                action = self.rng.choices(names, weights)[0]
                self.run.rep.stats[f"action {self.kind} {action}"] += 1
                await getattr(self, "do_" + action)()
                await self.pause(self.rng.uniform(0.1, 0.5))
            # The load is over: read normally and be attached for the drain.
            self.gate.set()
            self.slow = 0.0
            if self.stream is not None and hasattr(self.stream, "answer_pings"):
                self.stream.answer_pings = True
            for _ in range(5):
                if self.reader is not None and not self.reader.done():
                    break
                await self.handle_end()
                if self.conn is None:
                    break
        except Exception as e:  # a bug of the checker, not of houston
            import traceback
            self.run.vio("checker_error", f"{self.name}: {e}\n{traceback.format_exc()}")

    async def pause(self, seconds):
        if self.reader is not None and not self.reader.done():
            await asyncio.wait([self.reader], timeout=seconds)

    async def wait_end(self, seconds):
        await self.pause(seconds)
        return self.reader.done()

    # -- API subscriptions (both kinds of client)
    async def do_sub_api(self):
        topic = self.rng.choice(self.run.topics)
        iv = Interval(now(), "api")
        self.conn.subs[topic].append(iv)
        status, body = await self.run.api("POST", "/api/v1/subscribes",
                                          {"topic": topic, "connectionID": self.conn.cid})
        if status in (200, 201):
            iv.s_ok = now()
        elif status in (404, 429):
            self.conn.subs[topic].remove(iv)  # refused: nothing changed
        elif status not in (None, 503, 500):
            self.run.vio("subscribe_status", f"{self.name}: {status} {body!r:.200}")

    def close_intervals(self, topics, u_send, u_ok):
        for topic in topics:
            for iv in self.conn.subs.get(topic, []):
                if iv.u_send is None:
                    iv.u_send, iv.u_ok = u_send, u_ok

    async def do_unsub_api(self, every=False):
        subs = self.conn.subscribed_topics()
        if not subs:
            return await self.do_sub_api()
        topics = subs if every else [self.rng.choice(subs)]
        u_send = now()
        path = f"/api/v1/subscribes?connectionID={self.conn.cid}"
        if not every:
            path += f"&topic={topics[0]}"
        status, body = await self.run.api("DELETE", path)
        if status == 204:
            self.close_intervals(topics, u_send, now())
        elif status in (None, 503, 500):
            self.close_intervals(topics, u_send, None)
        else:
            self.close_intervals(topics, u_send, None)
            self.run.vio("unsubscribe_status", f"{self.name}: {status} {body!r:.200}")

    async def do_unsub_all_api(self):
        await self.do_unsub_api(every=True)

    async def do_idle(self):
        await self.pause(self.rng.uniform(0.2, 1.0))

    # -- drops and resumes
    def end_code(self):
        try:
            return self.reader.result()
        except Exception:
            return None

    async def handle_end(self):
        conn, tr = self.conn, self.conn.transport
        code = self.end_code()
        tr.end = tr.end or now()
        grace = self.run.grace
        old = self.stream
        if code is not None:
            # Closed by the server: let go of the socket a little later (a
            # client that did not answer the close frame keeps it open).
            asyncio.get_running_loop().call_later(2.0, old.abort)
        else:
            old.abort()
        if code == 4000:
            tr.end_kind = "kicked"
            if conn.kick_send is None:
                self.run.vio("unexpected_close", f"{self.name}: {conn.cid} closed 4000 "
                                                 "without a kick")
            conn.finish(conn.kick_send or tr.end - grace, "kicked (4000)")
            self.m.closed_tokens.append((now(), conn.token, conn.cid))
            if self.rng.random() < 0.5:
                await self.probe_token(conn.token, conn.cid, "kicked")
            await self.open_new()
        elif code == 1008:
            tr.end_kind = "1008"
            self.run.rep.stats["closed 1008"] += 1
            conn.finish(conn.impaired_since or tr.end - grace, "closed 1008")
            self.m.closed_tokens.append((now(), conn.token, conn.cid))
            await self.open_new()
        elif code in (None, 1001, 1006):
            tr.end_kind = "drop" if code is None else f"drop {code}"
            await self.resume(tr.end)
        else:
            tr.end_kind = f"closed {code}"
            self.run.vio("unexpected_close", f"{self.name}: {conn.cid} closed by the server with "
                                             f"{code} at {self.run.rel(tr.end)}")
            conn.finish(tr.end - grace, f"closed {code}")
            await self.open_new()

    def cursor_for(self, conn):
        ids = [r[0] for r in conn.received]
        r = self.rng.random()
        if conn.acked and r < 0.25:
            return ("ack", conn.max_ack)
        if not conn.acked and r < 0.08:
            return ("none", None)
        if ids:
            return ("id", max(ids))
        # Nothing received yet: every message since the connection began.
        return ("id", ulid_floor(int(conn.wall_start * 1000) - 2000))

    async def resume(self, drop_t):
        conn = self.conn
        wait = self.rng.choice([0, 0.05, 0.3, 1.0, 2.0])
        await asyncio.sleep(wait)
        same = conn.transport.node
        for attempt in range(10):
            if attempt:
                await asyncio.sleep(min(1.5, 0.25 * attempt))
            node = same if self.rng.random() < 0.5 else self.rng.choice(self.nodes)
            cursor = self.cursor_for(conn)
            # Now and then an older token of the same connection: every
            # token of it is valid for 24 h while it is detached.
            token = conn.token
            if len(conn.tokens) > 1 and self.rng.random() < 0.2:
                token = self.rng.choice(conn.tokens[:-1])
            got = await self.connect(node, f"?resume={token}", self.cursor_args(cursor))
            if got is None:
                continue
            stream, hello = got
            t = now()
            if hello.get("resumed") is True and hello.get("connectionID") == conn.cid:
                tr = Transport(len(conn.transports), node, t, cursor, drop_t)
                conn.transports.append(tr)
                if hello.get("resumeToken"):
                    conn.token = hello["resumeToken"]
                    conn.tokens.append(conn.token)
                self.run.rep.stats[f"resumes {self.kind} ({cursor[0]})"] += 1
                if node != same:
                    self.run.rep.stats[f"resumes {self.kind} on the other node"] += 1
                if hello.get("truncated"):
                    self.run.rep.stats["resumes truncated"] += 1
                    conn.finish(drop_t - self.run.grace, "truncated resume")
                self.attach(conn, stream)
                return
            if hello.get("resumed") is True:
                self.run.vio("resume_wrong_connection",
                             f"{self.name}: resume of {conn.cid} answered {hello!r:.300}")
            self.run.rep.stats["resumes refused"] += 1
            if attempt == 0:  # an abandoned attempt may have been served late
                self.judge_refusal(conn, drop_t, wait, t, hello)
            conn.finish(drop_t - self.run.grace, "resume refused")
            new = Conn(self.m, hello["connectionID"], hello.get("resumeToken"), node, t, self.kind)
            new.wall_start = time.time()
            self.attach(new, stream)
            return
        conn.finish(drop_t - self.run.grace, "could not resume")
        await self.open_new()

    def judge_refusal(self, conn, drop_t, wait, t, hello):
        """resumed:false is what the server says to a connection it cannot
        restore, and is allowed as such; it breaks docs/recovery.md only
        when the connection was surely detached and within its window: the
        client waited >= 1 s after the drop (the server saw the reset),
        resumed well within the window, was not kicked or closed, and no
        fault touched the topology from 10 s before the drop until now."""
        from topology import RESUME_WINDOW_S
        self.run.check_procs()  # a crash not yet noticed counts as a fault
        if wait < 1.0 or t - drop_t > RESUME_WINDOW_S - 3 or conn.kick_send is not None:
            return
        if conn.transport.end_kind not in ("drop",):
            return
        for start, end, _ in self.m.faults:
            if end >= drop_t - 10 and start <= t:
                return
        self.run.vio("resume_refused",
                     f"{self.name}: {conn.cid} dropped at {self.run.rel(drop_t)}, resumed "
                     f"{t - drop_t:.1f}s later and was refused: {hello!r:.200}; transports "
                     + self.run.describe(conn))

    async def probe_token(self, token, cid, why):
        """A resume with a token that must not work: a kicked or cleanly
        closed connection's, or one whose connection is attached."""
        if token is None:
            return
        node = self.rng.choice(self.nodes)
        got = await self.connect(node, f"?resume={token}")
        if got is None:
            return
        stream, hello = got
        self.run.rep.stats[f"probes {why}"] += 1
        if hello.get("resumed") is not False or hello.get("connectionID") == cid:
            self.run.vio(f"{why}_token_resumed",
                         f"{self.name}: a resume with the token of {why} {cid} on {node} "
                         f"answered {hello!r:.300}")
            if why == "attached" and self.conn is not None:
                self.conn.finish(now(), "taken over by a probe")
        await self.dispose(stream)

    async def dispose(self, stream):
        stream.reset()


class WsClient(Client):
    kind = "ws"

    def actions(self):
        return [("sub_api", 4), ("unsub_api", 2), ("unsub_all_api", 0.3), ("sub_frame", 2),
                ("unsub_frame", 1), ("ack", 3), ("idle", 3), ("rst", 2), ("frame_then_rst", 1),
                ("half_open", 0.7), ("slow", 1), ("stop_read", 0.5), ("probe_attached", 0.4),
                ("probe_closed", 0.4), ("close_new", 0.5)]

    async def open_stream(self, node, query, headers=None):
        path = "/api/v1/ws" + query
        if headers and "lastID" in headers:
            path += ("&" if "?" in path else "?") + f"lastID={headers['lastID']}"
        ws = await wire.WebSocket.connect(self.run.node_port(node), path)
        try:
            op, payload = await asyncio.wait_for(ws.frame(), FRAME_TIMEOUT)
            hello = json.loads(payload)
            if hello.get("type") != "connected" or "connectionID" not in hello:
                # e.g. the answer to another connection's frame, written on
                # this socket after that connection went away.
                self.run.vio("protocol", f"{self.name}: the first frame of a new WebSocket on "
                                         f"{node} is {hello!r:.200}, not connected")
                raise ValueError("not connected")
        except BaseException:
            ws.abort()
            raise
        return ws, hello

    def cursor_args(self, cursor):
        return {"lastID": cursor[1]} if cursor[0] == "id" else None

    async def read_loop(self, ws, conn, tr):
        try:
            while True:
                if not self.gate.is_set():
                    await self.gate.wait()
                if self.slow:
                    await asyncio.sleep(self.slow)
                op, payload = await ws.frame()
                if op != 1:
                    continue
                try:
                    obj = json.loads(payload)
                except ValueError:
                    continue
                typ = obj.get("type")
                if typ == "message":
                    self.record(conn, tr, obj["message"])
                elif typ in ("subscribed", "unsubscribed", "error"):
                    if self.pending is not None and not self.pending.done():
                        self.pending.set_result(obj)
                else:
                    self.run.vio("protocol", f"{self.name}: unexpected frame {obj!r:.200}")
        except wire.Closed as e:
            return e.code

    async def frame_op(self, obj, answer):
        """Sends a client frame; (answer frame or None when unknown)."""
        loop = asyncio.get_running_loop()
        self.pending = loop.create_future()
        self.stream.send_json(obj)
        done, _ = await asyncio.wait([self.pending, self.reader], timeout=FRAME_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self.pending in done:
            got = self.pending.result()
            if got.get("type") == answer and got.get("topic") == obj["topic"]:
                return got
            if got.get("type") == "error":
                return got
            self.frames_ok = False  # an answer to something else: stop guessing
            return None
        self.frames_ok = False  # no answer in time: later answers would be ambiguous
        return None

    async def do_sub_frame(self):
        if not self.frames_ok:
            return await self.do_sub_api()
        topic = self.rng.choice(self.run.topics)
        iv = Interval(now(), "frame")
        self.conn.subs[topic].append(iv)
        got = await self.frame_op({"type": "subscribe", "topic": topic}, "subscribed")
        if got is None:
            return
        if got.get("type") == "subscribed":
            iv.s_ok = now()
            if not self.run.t.frame_subscribe:
                self.run.vio("frame_subscribe", f"{self.name}: a subscribe frame was accepted "
                                                "outside the development default")
        elif got.get("code") == "internal":
            pass  # the store failed: outcome unknown, the interval stays allowed
        else:
            self.conn.subs[topic].remove(iv)
            if self.run.t.frame_subscribe or got.get("code") != "forbidden":
                self.run.vio("frame_subscribe", f"{self.name}: subscribe {topic}: {got!r:.200}")

    async def do_unsub_frame(self):
        subs = self.conn.subscribed_topics()
        if not self.frames_ok or not subs:
            return await self.do_sub_frame() if self.frames_ok else None
        topic = self.rng.choice(subs)
        u_send = now()
        got = await self.frame_op({"type": "unsubscribe", "topic": topic}, "unsubscribed")
        if got is not None and got.get("type") == "unsubscribed":
            self.close_intervals([topic], u_send, now())
        else:
            self.close_intervals([topic], u_send, None)
            if got is not None and got.get("code") != "internal":
                self.run.vio("frame_unsubscribe", f"{self.name}: unsubscribe {topic}: "
                                                  f"{got!r:.200}")

    async def do_ack(self):
        if self.conn.received:
            top = max(r[0] for r in self.conn.received)
            self.stream.send_json({"type": "ack", "id": top})
            self.conn.max_ack = max(self.conn.max_ack or "", top)
            self.conn.acked = True

    async def do_rst(self):
        self.stream.reset()
        await self.wait_end(2)

    async def do_frame_then_rst(self):
        """A subscribe or unsubscribe frame, and a reset before its answer
        (issue 13, finding 1)."""
        subs = self.conn.subscribed_topics()
        if subs and (self.rng.random() < 0.5 or not self.run.t.frame_subscribe):
            topic = self.rng.choice(subs)
            self.stream.send_json({"type": "unsubscribe", "topic": topic})
            self.close_intervals([topic], now(), None)
        elif self.run.t.frame_subscribe:
            topic = self.rng.choice(self.run.topics)
            self.conn.subs[topic].append(Interval(now(), "frame+rst"))
            self.stream.send_json({"type": "subscribe", "topic": topic})
        await asyncio.sleep(self.rng.choice([0, 0, 0.001, 0.003]))
        self.stream.reset()
        await self.wait_end(2)

    async def do_half_open(self):
        """Stops answering pings: the server drops it after two (no close)."""
        self.conn.impaired_since = self.conn.impaired_since or now()
        self.stream.answer_pings = False
        await self.wait_end(self.rng.uniform(2, 8))
        self.stream.answer_pings = True

    async def do_slow(self):
        self.conn.impaired_since = self.conn.impaired_since or now()
        self.slow = self.rng.uniform(0.005, 0.08)
        await self.wait_end(self.rng.uniform(1, 4))
        self.slow = 0.0

    async def do_stop_read(self):
        self.conn.impaired_since = self.conn.impaired_since or now()
        self.gate.clear()
        await asyncio.sleep(self.rng.uniform(1, 5))
        self.gate.set()

    async def roundtrip(self):
        """True when the server answers a frame on this transport now (an
        unknown type: the answer is an error frame): it is attached."""
        if not self.frames_ok or self.reader.done():
            return False
        loop = asyncio.get_running_loop()
        self.pending = loop.create_future()
        self.stream.send_json({"type": "checker-roundtrip"})
        done, _ = await asyncio.wait([self.pending, self.reader], timeout=FRAME_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self.pending in done and self.pending.result().get("code") == "unsupported":
            return True
        self.frames_ok = False
        return False

    async def do_probe_attached(self):
        """A resume with the token of this connection while it is attached
        must be refused. Judged only when a round trip on this transport
        answers before and after the probe (the server had it attached)."""
        if self.conn.impaired_since is not None or not self.stream.answer_pings:
            return
        if not await self.roundtrip():
            return
        node = self.rng.choice(self.nodes)
        got = await self.connect(node, f"?resume={self.conn.token}")
        if got is None:
            return
        stream, hello = got
        self.run.rep.stats["probes attached"] += 1
        if hello.get("resumed") is not False or hello.get("connectionID") == self.conn.cid:
            if await self.roundtrip():
                self.run.vio("attached_token_resumed",
                             f"{self.name}: a resume with the token of attached {self.conn.cid} "
                             f"on {node} answered {hello!r:.300}, and the connection still "
                             "answers on its first transport")
            else:
                self.run.rep.stats["probes attached: taken over (not judged)"] += 1
                self.conn.finish(now() - self.run.grace, "taken over by a probe")
        await self.dispose(stream)

    async def do_probe_closed(self):
        old = [(t, tok, cid) for t, tok, cid in self.m.closed_tokens if now() - t > 1.0]
        if old:
            _, tok, cid = self.rng.choice(old)
            await self.probe_token(tok, cid, "closed")

    async def do_close_new(self):
        t = now()
        self.stream.echo_close = False
        self.stream.close(1000)
        await self.wait_end(3)
        self.conn.transport.end, self.conn.transport.end_kind = t, "closed 1000"
        self.conn.finish(t, "closed 1000 by the client")
        if self.reader.done() and self.end_code() == 1000:
            # Only a close the server answered is surely not resumable.
            self.m.closed_tokens.append((now(), self.conn.token, self.conn.cid))
        self.reader.cancel()
        self.stream.abort()
        await self.open_new()

    async def dispose(self, stream):
        stream.close(1000)
        try:
            await asyncio.wait_for(stream.frame(), 2)
        except (wire.Closed, asyncio.TimeoutError, ValueError):
            pass
        stream.abort()

    async def leave(self):
        if self.conn is None or self.reader is None:
            return
        self.conn.finish(now(), "left")
        if not self.reader.done():
            self.stream.close(1000)
            await self.pause(3)
        self.reader.cancel()
        self.stream.abort()


class SseClient(Client):
    kind = "sse"

    def actions(self):
        return [("sub_api", 4), ("unsub_api", 2), ("idle", 4), ("rst", 2), ("stop_read", 0.3)]

    async def open_stream(self, node, query, headers=None):
        stream = await wire.EventStream.connect(self.run.node_port(node), "/api/v1/sse" + query,
                                                headers)
        try:
            name, _, data = await asyncio.wait_for(stream.event(), FRAME_TIMEOUT)
            hello = json.loads(data)
            if name != "connected" or "connectionID" not in hello:
                self.run.vio("protocol", f"{self.name}: first event {name} {data:.200}")
                raise ValueError("not connected")
        except BaseException:
            stream.writer.transport.abort()
            raise
        return stream, hello

    def cursor_for(self, conn):
        ids = [r[0] for r in conn.received]
        if ids:
            return ("id", max(ids))
        return ("id", ulid_floor(int(conn.wall_start * 1000) - 2000))

    def cursor_args(self, cursor):
        return {"Last-Event-ID": cursor[1]}

    async def read_loop(self, stream, conn, tr):
        try:
            while True:
                if not self.gate.is_set():
                    await self.gate.wait()
                name, ident, data = await stream.event()
                if name == "message":
                    msg = json.loads(data)
                    if ident != msg.get("id"):
                        self.run.vio("protocol", f"{self.name}: event id {ident} for {data:.100}")
                    self.record(conn, tr, msg)
                elif name not in ("notification",):
                    self.run.vio("protocol", f"{self.name}: unexpected event {name}")
        except wire.Closed:
            return None

    async def do_rst(self):
        self.stream.reset()
        await self.wait_end(2)

    async def do_stop_read(self):
        self.conn.impaired_since = self.conn.impaired_since or now()
        self.gate.clear()
        await asyncio.sleep(self.rng.uniform(1, 3))
        self.gate.set()

    async def leave(self):
        if self.conn is None or self.reader is None:
            return
        self.conn.finish(now(), "left")
        self.reader.cancel()
        self.stream.reset()
