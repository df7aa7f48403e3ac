#!/usr/bin/env python3
"""houston's delivery checker (issue 13): attacks a running topology with
randomised, concurrent load and faults drawn from one seed, then checks the
invariants of docs (tests/check/README.md states each one as checked here).
Prints every violation with the seed that reproduces it; exit status 1 when
there is any, 2 when the checker itself could not run.

    python3 tests/check/check.py --seed 42 --seconds 120 --topology both
"""
import argparse
import asyncio
import bisect
import os
import random
import shutil
import signal
import sys
import tempfile
import traceback
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import topology as topo  # noqa: E402
import wire  # noqa: E402

from model import INF, Model, Pub, now  # noqa: E402

# A killed consumer's partitions are held again within 3 heartbeats of its
# last renewal plus the beat a survivor takes to notice (4 x 1 s in the
# scale-out topology), and a second for the hand-on.
CONSUMER_TAKEOVER_S = 5.0


# ---- the record of what happened ----------------------------------------------

class Report:
    """Violations by kind, each with its text; printed with the seed."""

    def __init__(self, seed, topology, replay):
        self.seed, self.topology, self.replay = seed, topology, replay
        self.kinds = defaultdict(list)
        self.stats = defaultdict(int)
        self.notes = []

    def add(self, kind, text):
        self.kinds[kind].append(text)

    def print(self, out=sys.stdout):
        p = lambda *a: print(*a, file=out)  # noqa: E731
        p(f"\n== {self.topology}: seed {self.seed}")
        for key in sorted(self.stats):
            p(f"   {key}: {self.stats[key]}")
        for note in self.notes:
            p(f"   note: {note}")
        if not self.kinds:
            p(f"== {self.topology}: no violation (seed {self.seed})")
            return
        for kind in sorted(self.kinds):
            items = self.kinds[kind]
            p(f"VIOLATION {kind}: {len(items)} (topology {self.topology}, seed {self.seed})")
            for text in items[:5]:
                p("   - " + text.replace("\n", "\n     "))
        p(f"reproduce: {self.replay}")


# ---- the run --------------------------------------------------------------------

class Run:
    def __init__(self, topology, seed, seconds, report, sanitized, only_faults=None,
                 skip_actions=()):
        self.only_faults = only_faults
        self.skip_actions = set(skip_actions)
        self.t = topology
        self.seed = seed
        self.seconds = seconds
        self.rep = report
        self.sanitized = sanitized
        self.m = Model()
        self.rng = random.Random(f"{seed}-{topology.name}")
        self.topics = [f"s{seed % 100000}.t{i}" for i in range(6)]
        # Deliveries in flight when a connection drops may be lost to it
        # by the client's own cursor choice (docs/recovery.md): a message
        # answered 2xx less than this before the drop is not required of
        # the transport that dropped (see README: "in flight").
        self.grace = 3.0 if topology.name == "embedded" else 6.0
        # The latency the checker grants live delivery at the end of a
        # subscribed window (see README: "the subscribed window").
        self.flight = 1.0 if topology.name == "embedded" else 2.0
        if sanitized:
            self.grace *= 2
            self.flight *= 2
        self.restarting = set()
        self.gone = {}  # processes killed for good (kill_consumer_for_good)

    # -- helpers
    def node_port(self, node):
        return self.t.nodes[node]

    def api(self, method, path, body=None, headers=None, timeout=10.0):
        return wire.http(self.t.api_port, method, path, body, headers, timeout)

    def vio(self, kind, text):
        self.rep.add(kind, text)

    def rel(self, t):
        return "-" if t is None else f"{t - self.t0:.3f}s"

    def check_procs(self):
        """A houston process that exited without being killed is a crash:
        recorded (I4) and restarted so the run goes on."""
        for name, p in self.t.procs.items():
            if name in self.restarting:
                continue
            if p.exited_unexpectedly():
                tail = p.tail(6000)
                reports = [line for line in tail.splitlines()
                           if topo.CRASH_PATTERNS.search(line) or " #0 " in line
                           or " #1 " in line or " #2 " in line]
                why = "\n".join(reports[:6]) or "\n".join(tail.splitlines()[-4:])
                self.vio("crash", f"{name} exited with {p.proc.returncode} at "
                                  f"{self.rel(now())}:\n{why}")
                p.crashes.append(now())
                self.m.faults.append([now() - 1.0, now() + 2.0, f"crash of {name}"])
                try:
                    p.start()
                except Exception as e:
                    self.vio("crash", f"{name} did not restart: {e}")

    # -- publishers
    async def publisher(self, i):
        rng = random.Random(f"{self.seed}-{self.t.name}-pub-{i}")
        n = 0
        while not self.m.stop:
            await asyncio.sleep(rng.uniform(0.01, 0.08) * (2 if self.sanitized else 1))
            n += 1
            topic = rng.choice(self.topics[:4] if i % 2 else self.topics[2:])
            pad = "x" * rng.choice([0, 0, 0, 0, 0, 0, 100, 2000, 12000])
            content = f"{self.seed}-{self.t.name}-p{i}-{n}{pad}"
            r = rng.random()
            mode = "plain" if r < 0.45 else "key" if r < 0.75 else "repeat" if r < 0.9 else "lost"
            key = None if mode == "plain" else f"k-{self.seed}-{self.t.name}-{i}-{n}"
            pub = Pub(topic, content, key, mode)
            self.m.pubs.append(pub)
            self.m.by_content[content] = pub
            body = {"topic": topic, "content": content, "author": f"pub{i}"}
            headers = {"Idempotency-Key": key} if key else None
            # Through any publisher (scale-out: two, with skewed clocks).
            port = rng.choice(self.t.api_ports)
            pub.p0 = now()
            if mode == "lost":
                await wire.http_lost_answer(port, "POST", "/api/v1/messages", body,
                                            headers, rng.choice([0, 0.001, 0.005, 0.02]))
            attempts = 1 if mode == "plain" else 8
            for attempt in range(attempts):
                status, answer = await wire.http(port, "POST", "/api/v1/messages", body,
                                                 headers, 10.0)
                if status in (200, 201):
                    pub.p1, pub.status = now(), status
                    if not isinstance(answer, dict) or answer.get("content") != content \
                            or answer.get("topic") != topic:
                        self.vio("publish_answer", f"{content[:40]} answered {answer!r:.200}")
                        break
                    pub.id = answer["id"]
                    if status == 200 and mode != "lost" and attempt == 0:
                        self.vio("idempotency", f"first publish of key {key} answered 200 "
                                                f"(attempt {attempt + 1})")
                    other = self.m.by_id.get(pub.id)
                    if other is not None and other is not pub:
                        self.vio("duplicate_id", f"{pub.id} answered for {content[:40]} and "
                                                 f"{other.content[:40]}")
                    self.m.by_id[pub.id] = pub
                    break
                pub.status = status
                if status not in (None, 503, 500) or self.m.stop and attempt > 2:
                    if status not in (None, 503, 500):
                        self.vio("publish_status", f"{content[:40]}: {status} {answer!r:.200}")
                    break
                await asyncio.sleep(0.2 + 0.2 * attempt)
            if mode == "repeat" and pub.id:
                await asyncio.sleep(rng.uniform(0, 0.3))
                port = rng.choice(self.t.api_ports)  # the key is known to every publisher
                for attempt in range(5):
                    status, answer = await wire.http(port, "POST", "/api/v1/messages", body,
                                                     headers, 10.0)
                    if status in (None, 503, 500):
                        await asyncio.sleep(0.3)
                        continue
                    if status != 200 or not isinstance(answer, dict) or answer.get("id") != pub.id:
                        self.vio("idempotency", f"repeat of key {key} answered {status} "
                                                f"{answer!r:.200}, first was {pub.id}")
                    break

    # -- pagers (I3 during publishing)
    async def pager(self, i):
        rng = random.Random(f"{self.seed}-{self.t.name}-pager-{i}")
        while not self.m.stop:
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            topic = rng.choice(self.topics)
            known = [p for p in self.m.pubs if p.id and p.topic == topic]
            cursor = None
            if known and rng.random() < 0.7:
                cursor = rng.choice(known).id
            forward = rng.random() < 0.5
            await self.walk(topic, cursor, forward, rng.randint(1, 60), live=True)

    async def walk(self, topic, cursor, forward, limit, live, max_pages=80):
        """Walks the history of topic from cursor; checks order, no
        duplicate, and (I3) that every message answered 2xx before the walk
        started on the right side of the cursor was seen. Returns the ids."""
        t0 = now()
        before = [p for p in self.m.pubs if p.id and p.topic == topic and p.p1 is not None
                  and p.p1 < t0]
        seen, ids, last = set(), [], cursor
        complete = False
        for _ in range(max_pages):
            q = f"/api/v1/messages?topic={topic}&limit={limit}&forward={'true' if forward else 'false'}"
            if last:
                q += f"&lastID={last}"
            status, page = await self.api("GET", q)
            if status != 200 or not isinstance(page, dict):
                if status in (None, 503):
                    return None  # a fault: this walk proves nothing
                self.vio("history_status", f"GET {q}: {status} {page!r:.200}")
                return None
            for msg in page["messages"]:
                mid = msg["id"]
                if mid in seen:
                    self.vio("history_duplicate", f"{mid} twice in a walk of {topic} from "
                                                  f"{cursor} forward={forward} limit={limit}")
                if msg["topic"] != topic:
                    self.vio("history_topic", f"{mid} of {msg['topic']} in a walk of {topic}")
                prev = ids[-1] if ids else cursor
                if prev is not None and (mid <= prev if forward else mid >= prev):
                    self.vio("history_order", f"{mid} after {prev} in a walk of {topic} "
                                              f"forward={forward} limit={limit} from {cursor}")
                seen.add(mid)
                ids.append(mid)
            if len(page["messages"]) > limit:
                self.vio("history_limit", f"{len(page['messages'])} messages for limit {limit}")
            nxt = page.get("next")
            if nxt is None:
                complete = True
                break
            if page["messages"] and nxt != page["messages"][-1]["id"]:
                self.vio("history_next", f"next {nxt} is not the last id of the page")
            if not page["messages"]:
                self.vio("history_next", f"empty page with next {nxt} ({topic}, from {last})")
                break
            last = nxt
        # I3: what was committed before the walk began, on the right side
        # of the cursor (and within what the walk covered), was returned.
        reach = None if complete or not ids else ids[-1]
        for p in before:
            if cursor is not None and (p.id <= cursor if forward else p.id >= cursor):
                continue
            if reach is not None and (p.id > reach if forward else p.id < reach):
                continue
            if p.id not in seen:
                self.vio("history_missing",
                         f"{p.id} ({topic}, answered {p.status} at {self.rel(p.p1)}) not in a "
                         f"{'live ' if live else ''}walk started {self.rel(t0)} from {cursor} "
                         f"forward={forward} limit={limit}")
        self.rep.stats["history walks"] += 1
        return ids

    # -- kicks
    async def kicker(self):
        rng = random.Random(f"{self.seed}-{self.t.name}-kicker")
        while not self.m.stop:
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            live = [c for c in self.m.conns if c.end is None and c.transport.end is None
                    and c.kind == "ws"]
            if not live:
                continue
            c = rng.choice(live)
            c.kick_send = now()
            status, body = await self.api("DELETE", f"/api/v1/connections/{c.cid}")
            if status == 204:
                self.rep.stats["kicks"] += 1
                # Required until the kick - or, when the client had let its
                # transport go quiet (half-open, not reading), until then:
                # the server may have detached it before the kick, and a
                # kicked connection is not replayed what it missed.
                c.finish(min(c.kick_send, c.impaired_since or c.kick_send,
                             self.stalled_since(c.transport.node, c.kick_send)), "kicked")
                asyncio.ensure_future(self.after_kick(c))
            elif status not in (404, 503, None):
                self.vio("kick_status", f"DELETE connection {c.cid}: {status} {body!r:.200}")

    def interrupted(self, tr, end):
        """A connection that ended (kicked, refused, closed) while the
        process serving its last transport was killed or stopped: what was on
        its way then was in flight when it ended, however long it waited, and
        a connection whose notifier was killed is not resumed (its rows stay
        attached until the node is cleaned up): it is owed what was sent
        before the interruption."""
        # A consumer killed shortly before the end: the events of its
        # partitions wait until the others take them over (within 4
        # heartbeats of 1 s, docs/scaling.md), so what was on its way then
        # was in flight when the connection ended - also when the kill came
        # before this transport began (what was published on it since
        # waited for the take-over all the same).
        consumers = [q for n, q in list(self.t.procs.items()) + list(self.gone.items())
                     if n.startswith("consumer")]
        starts = [max(a, tr.start) for q in consumers for a, _, kind in q.interruptions
                  if kind == "kill" and a <= end <= a + CONSUMER_TAKEOVER_S]
        p = self.t.procs.get(f"notifier-{tr.node}") or self.t.procs.get("serve")
        if p is None:
            return min(starts, default=INF)
        # A kill ends the transport; a stop only what it held up until the
        # end came, during it or within 5 s after it.
        starts += [a for a, b, kind in p.interruptions
                   if tr.start <= a <= end and (kind == "kill" or b >= end - 5.0)]
        if p.paused and p.paused_from is not None and tr.start <= p.paused_from <= end:
            starts.append(p.paused_from)
        return min(starts, default=INF)

    def stalled_since(self, node, at):
        """When the process serving node was last stopped (SIGSTOP), if it
        still was, or went on less than 5 s, before at: what was on its way
        to its connections then was still in flight at a kick, however long
        it waited (a kick ends a connection with what it had)."""
        p = self.t.procs.get(f"notifier-{node}") or self.t.procs.get("serve")
        if p is None or p.paused_from is None or p.paused_from > at:
            return INF
        if p.paused_until is not None and p.paused_until < at - 5.0:
            return INF
        return p.paused_from

    async def after_kick(self, c):
        """A kicked connection ends at once: not listed, not resumable."""
        await asyncio.sleep(1.0)
        status, body = await self.api("GET", f"/api/v1/connections/{c.cid}")
        if status == 200:
            self.vio("kick_lingers", f"{c.cid} still listed 1 s after its kick answered 204 "
                                     f"(at {self.rel(c.kick_send)}): {body!r:.200}")
        self.m.closed_tokens.append((now(), c.token, c.cid))

    # -- faults
    async def faulter(self):
        rng = random.Random(f"{self.seed}-{self.t.name}-faults")
        faults = [(n, w) for n, w in self.t.faults
                  if (not self.only_faults or n in self.only_faults)
                  # a burst under the sanitizers would not pass the cap
                  and not (self.sanitized and n == "pause_notifier_burst")]
        if not faults:
            return
        names = [n for n, _ in faults]
        weights = [w for _, w in faults]
        await asyncio.sleep(rng.uniform(2, 4))
        # Scale-out: once, mid-load, a consumer is killed and not restarted
        # (its partitions must be taken over by the others).
        kill_for_good_at = (self.t0 + self.load_s / 2
                            if self.t.name == "scaleout" and (not self.only_faults or
                                                              "kill_consumer_for_good"
                                                              in self.only_faults)
                            else INF)
        while not self.m.stop:
            what = rng.choices(names, weights)[0]
            if now() >= kill_for_good_at:
                what, kill_for_good_at = "kill_consumer_for_good", INF
            start = now()
            entry = [start, INF, what]  # open while it lasts
            self.m.faults.append(entry)
            try:
                detail = await self.fault(what, rng)
            except Exception as e:
                self.rep.notes.append(f"fault {what} failed: {e}")
                detail = what
            entry[1:] = [now(), detail]
            self.rep.stats[f"fault {what}"] += 1
            await asyncio.sleep(rng.uniform(3, 7))

    async def fault(self, what, rng):
        procs = self.t.procs

        async def kill_restart(name, down):
            p = procs[name]
            self.restarting.add(name)
            try:
                p.kill9()
                await asyncio.sleep(down)
                await asyncio.to_thread(p.start)
            finally:
                self.restarting.discard(name)
            return f"kill -9 {name}, restarted after {down:.1f}s"

        if what == "pause_notifier_burst":
            # A notifier stalled while more than its stream's cap (10,000
            # entries) is routed to it (issue 13, finding 4).
            name = rng.choice(["notifier-n1", "notifier-n2"])
            topic = rng.choice(self.topics)
            procs[name].pause()
            t0 = now()
            try:
                sent = await self.burst(topic, 12000, t0 + 7.0, rng)
            finally:
                await asyncio.sleep(max(0.0, 2.0 - (now() - t0)))
                procs[name].cont()
            return f"SIGSTOP {name} for {now() - t0:.1f}s while {sent} went to {topic}"
        if what == "burst":
            # A backlog on one topic while clients drop and resume: a resume
            # across several topics during a burst (issue 13, finding 2).
            topic = rng.choice(self.topics)
            # Two clients on that topic and another one drop as it begins
            # and resume while it runs.
            victims = [c for c in self.clients
                       if c.kind == "ws" and c.conn is not None and c.reader is not None
                       and not c.reader.done() and topic in c.conn.subscribed_topics()
                       and len(c.conn.subscribed_topics()) > 1]
            for c in rng.sample(victims, min(2, len(victims))):
                c.stream.reset()
                # Dropped now, whenever its own loop notices: a kick from
                # now on finds it detached.
                c.conn.transport.end = c.conn.transport.end or now()
                self.rep.stats["dropped at a burst"] += 1
            sent = await self.burst(topic, 3000, now() + 5.0, rng, pace=0.1)
            return f"burst of {sent} to {topic}"
        if what == "pause_serve" or what == "pause_notifier":
            name = "serve" if what == "pause_serve" else rng.choice(["notifier-n1", "notifier-n2"])
            secs = rng.uniform(0.5, 2.5) if what == "pause_serve" else rng.uniform(1, 6)
            procs[name].pause()
            await asyncio.sleep(secs)
            procs[name].cont()
            return f"SIGSTOP {name} for {secs:.1f}s"
        if what == "kill_serve":
            return await kill_restart("serve", rng.uniform(0.2, 1.0))
        consumers = sorted(n for n in procs if n.startswith("consumer"))
        if what == "kill_consumer":
            return await kill_restart(rng.choice(consumers), rng.uniform(0.3, 2))
        if what == "kill_consumer_for_good":
            # Gone for the rest of the run: it leaves the topology (no exit
            # status to judge), its partitions go to the others.
            name = rng.choice(consumers)
            self.restarting.add(name)
            procs[name].kill9()
            self.gone[name] = procs.pop(name)
            self.restarting.discard(name)
            return f"kill -9 {name}, not restarted"
        if what == "kill_notifier":
            return await kill_restart(rng.choice(["notifier-n1", "notifier-n2"]),
                                      rng.uniform(0.5, 2))
        if what == "kill_publisher":
            return await kill_restart(rng.choice(self.t.publishers), rng.uniform(0.3, 1.5))
        if what in ("kill_redis", "kill_mariadb"):
            svc = self.t.services["redis" if what == "kill_redis" else "mariadb"]
            down = rng.uniform(0.5, 2.5)
            await asyncio.to_thread(svc.kill)
            await asyncio.sleep(down)
            await asyncio.to_thread(svc.start)
            return f"kill -9 {what[5:]}, restarted after {down:.1f}s"
        raise ValueError(what)

    async def burst(self, topic, n, deadline, rng, pace=0.0):
        """n publishes to topic, pipelined in batches of 200 over four
        connections at once, until the deadline. Returns how many were
        answered 201."""
        self.bursts = getattr(self, "bursts", 0) + 1
        counter = iter(range(n))
        answered = 0

        async def lane(k):
            nonlocal answered
            while now() < deadline:
                batch = []
                for j in counter:
                    content = f"{self.seed}-{self.t.name}-b{self.bursts}-{j}"
                    pub = Pub(topic, content, None, "burst")
                    batch.append(pub)
                    if len(batch) == (100 if pace else 200):
                        break
                if not batch:
                    return
                reqs = []
                for pub in batch:
                    pub.p0 = now()
                    self.m.pubs.append(pub)
                    self.m.by_content[pub.content] = pub
                    reqs.append(wire.request_bytes("POST", "/api/v1/messages",
                                                   {"topic": topic, "content": pub.content},
                                                   close=False))
                if pace:
                    await asyncio.sleep(pace)
                i = 0
                lane_port = self.t.api_ports[k % len(self.t.api_ports)]  # lanes share publishers
                async for status, answer in wire.pipelined(lane_port, reqs):
                    pub = batch[i]
                    i += 1
                    pub.status = status
                    if status == 201 and isinstance(answer, dict) and "id" in answer:
                        pub.p1, pub.id = now(), answer["id"]
                        self.m.by_id[pub.id] = pub
                        answered += 1

        await asyncio.gather(*(lane(k) for k in range(4)))
        return answered

    async def watchdog(self):
        while not self.m.settle:
            self.check_procs()
            for p in self.t.procs.values():
                if p.baseline is None and p.running() and not p.paused \
                        and now() - p.started_at >= 1.0:
                    p.baseline = (p.rss_kib(), p.fds())
            await asyncio.sleep(0.5)

    # -- the whole run
    async def main(self):
        self.t0 = now()
        load_s = max(6.0, self.seconds - (30 if self.t.name == "scaleout" else 18))
        self.load_s = load_s
        self.rep.notes.append(f"load {load_s:.0f}s of a {self.seconds:.0f}s budget")
        # I4's baseline: each process 1 s after its start, before any client
        # (for a process restarted during the run: 1 s after the restart).
        await asyncio.sleep(1.0)
        for p in self.t.procs.values():
            p.baseline = (p.rss_kib(), p.fds())
        from clients import WsClient, SseClient
        n_ws = 10
        clients = [WsClient(self, i) for i in range(n_ws)] + [SseClient(self, i) for i in range(2)]
        self.clients = clients
        tasks = [asyncio.ensure_future(c.life()) for c in clients]
        pubs = [asyncio.ensure_future(self.publisher(i)) for i in range(3)]
        side = [asyncio.ensure_future(x) for x in
                (self.pager(0), self.pager(1), self.kicker(), self.faulter(), self.watchdog())]
        await asyncio.sleep(load_s)
        self.m.stop = True
        self.rep.stats["publishes"] = len(self.m.pubs)
        # Faults end (a paused process continued, a killed one restarted),
        # publishers finish their retries.
        await asyncio.wait(pubs + side[:4], timeout=60)
        for name, p in self.t.procs.items():
            p.cont()
        self.check_procs()
        self.m.settle = True
        # Every client ends its action and comes back (resumes) if dropped.
        await asyncio.wait(tasks, timeout=40)
        for c, task in zip(clients, tasks):
            if not task.done():
                self.rep.notes.append(f"client {c.name} did not settle")
        # Drain: until nothing arrived for 3 s (at most 30 s).
        end = now() + 30
        while now() < end and now() - self.m.last_receipt < 3:
            await asyncio.sleep(0.25)
        self.check_procs()
        self.final_time = now()
        await self.final_history()
        self.check_deliveries()
        for c in clients:
            await c.leave()
        await self.after_leave()
        for start, end, what in self.m.faults[:40]:
            self.rep.notes.append(f"fault {self.rel(start)}..{self.rel(end)}: {what}")
        self.rep.stats["connections"] = len(self.m.conns)
        self.rep.stats["deliveries"] = sum(len(c.received) for c in self.m.conns)
        self.rep.stats["2xx publishes"] = sum(1 for p in self.m.pubs if p.id)

    async def final_history(self):
        """I1 and I3 after the drain."""
        self.history = {}
        stored = {}
        for topic in self.topics:
            ids = await self.walk(topic, None, True, 1000, live=False, max_pages=1000)
            if ids is None:
                self.vio("history_unavailable", f"{topic}: the final walk failed")
                continue
            self.history[topic] = ids
            for mid in ids:
                stored[mid] = topic
        self.stored = stored
        # I1: every 2xx publish is stored exactly once (by content), under its id.
        rng = random.Random(f"{self.seed}-{self.t.name}-final")
        sample = [p for p in self.m.pubs if p.id]
        by_id_checks = rng.sample(sample, min(len(sample), 300))
        for p in sample:
            if p.topic not in self.history:
                continue  # its final walk failed (reported as history_unavailable)
            if p.id not in stored:
                self.vio("lost_publish", f"{p.id} ({p.topic}, {p.mode}, answered {p.status} at "
                                         f"{self.rel(p.p1)}) not in the history")
            elif stored[p.id] != p.topic:
                self.vio("lost_publish", f"{p.id} stored under {stored[p.id]}, not {p.topic}")
        for p in by_id_checks:
            status, msg = await self.api("GET", f"/api/v1/messages/{p.id}")
            if status != 200 or not isinstance(msg, dict) or msg.get("content") != p.content:
                self.vio("lost_publish", f"GET /api/v1/messages/{p.id}: {status} {msg!r:.120}")
        # Exactly once: no two stored messages with one content (keyed
        # publishes and retries of lost answers must not be stored twice).
        seen_content = {}
        self.rep.stats["stored"] = len(stored)
        ids_by_topic = {t: sorted(v) for t, v in self.history.items()}
        await self.stored_contents(seen_content)
        # I3 from random cursors after the drain: exactly the slice.
        for topic, ids in ids_by_topic.items():
            for _ in range(4):
                forward = rng.random() < 0.5
                cursor = rng.choice(ids) if ids and rng.random() < 0.8 else None
                # At most ~500 pages per walk, and enough pages for all of it.
                limit = max(rng.randint(1, 200), len(ids) // 500 + 1)
                got = await self.walk(topic, cursor, forward, limit, live=False,
                                      max_pages=len(ids) // limit + 3)
                if got is None:
                    continue
                if cursor is None:
                    want = ids if forward else ids[::-1]
                elif forward:
                    want = ids[bisect.bisect_right(ids, cursor):]
                else:
                    want = ids[:bisect.bisect_left(ids, cursor)][::-1]
                if got != want:
                    self.vio("history_walk", f"walk of {topic} from {cursor} forward={forward} "
                                             f"limit={limit}: {len(got)} ids, expected {len(want)}")

    async def stored_contents(self, seen_content):
        """Reads every stored message once more (pages of 1000) and checks
        no content is stored twice."""
        self.stored_msg = {}
        for topic in self.topics:
            last = None
            for _ in range(1000):
                q = f"/api/v1/messages?topic={topic}&limit=1000&forward=true"
                if last:
                    q += f"&lastID={last}"
                status, page = await self.api("GET", q)
                if status != 200:
                    break
                for msg in page["messages"]:
                    self.stored_msg[msg["id"]] = msg
                    other = seen_content.get(msg["content"])
                    if other is not None:
                        pub = self.m.by_content.get(msg["content"])
                        self.vio("stored_twice", f"content {msg['content'][:40]} stored as "
                                                 f"{other} and {msg['id']} "
                                                 f"({pub.mode if pub else '?'} publish)")
                    seen_content[msg["content"]] = msg["id"]
                last = page.get("next")
                if not last:
                    break

    # -- I2
    def check_deliveries(self):
        pubs_by_topic = defaultdict(list)
        for p in self.m.pubs:
            if p.id and p.p1 is not None:
                pubs_by_topic[p.topic].append(p)
        self.p0s = {}
        for topic, pubs in pubs_by_topic.items():
            pubs.sort(key=lambda p: p.p0)
            self.p0s[topic] = [p.p0 for p in pubs]
        for c in self.m.conns:
            self.check_conn(c, pubs_by_topic)

    def check_conn(self, c, pubs_by_topic):
        where = f"conn {c.cid} ({c.kind}, {len(c.transports)} transport(s), end " \
                f"{self.rel(c.end)} {c.end_reason or ''})"
        got = {}
        per_transport_topic_last = {}
        for mid, topic, ti, t in c.received:
            if topic not in self.history:
                continue  # no final walk of it to compare with
            msg = self.stored_msg.get(mid)
            pub = self.m.by_id.get(mid)
            # Real: stored, of that topic.
            if msg is None:
                self.vio("unreal_message", f"{where}: received {mid} ({topic}) which is not "
                                           f"in the history")
                continue
            if msg["topic"] != topic:
                self.vio("unreal_message", f"{where}: {mid} received as {topic}, stored as "
                                           f"{msg['topic']}")
            if pub is None:
                pub = self.m.by_content.get(msg["content"])
            # Allowed: subscribed when it arrived (from the client's view:
            # the subscribe was sent before), unless it was published after
            # an unsubscribe was answered. A delivery decided at fan-out
            # time may carry a message committed just before the subscribe.
            p0 = pub.p0 if pub else None
            p1 = pub.p1 if pub and pub.p1 is not None else INF
            allowed = False
            for iv in c.subs.get(topic, []):
                if iv.s_send < t and (iv.u_ok is None or p0 is None or p0 < iv.u_ok):
                    allowed = True
                    break
            # A resume replays every message of the topics the connection
            # has when it resumes with an id above the cursor, also those
            # published before the subscription (docs/recovery.md).
            tr = c.transports[ti]
            if not allowed and tr.cursor is not None:
                cur = tr.cursor[1] if tr.cursor[0] == "id" else None
                if cur is None or mid > cur:
                    for iv in c.subs.get(topic, []):
                        if iv.s_send < tr.start and (iv.u_ok is None or iv.u_ok > tr.drop_before):
                            allowed = True
                            self.rep.stats["replayed from before the subscription"] += 1
                            break
            if not allowed:
                ivs = ", ".join(f"[{self.rel(iv.s_send)}..{self.rel(iv.u_ok)}]"
                                for iv in c.subs.get(topic, []))
                self.vio("unsubscribed_delivery",
                         f"{where}: {mid} of {topic} (published {self.rel(p0)}..{self.rel(p1)}) "
                         f"received at {self.rel(t)} on transport {ti}; subscriptions {ivs or 'none'}")
            # Exactly once.
            if mid in got:
                first_ti = got[mid]
                tr = c.transports[ti]
                if first_ti == ti:
                    self.vio("duplicate", f"{where}: {mid} ({topic}) twice on transport {ti}")
                elif tr.cursor and tr.cursor[0] == "id" and mid <= tr.cursor[1]:
                    self.vio("duplicate", f"{where}: {mid} ({topic}) on transport {first_ti} and "
                                          f"again on {ti}, resumed with lastID {tr.cursor[1]}")
                else:
                    self.rep.stats["redelivered above the resume cursor"] += 1
            else:
                got[mid] = ti
            # In id order per topic on each transport.
            k = (ti, topic)
            prev = per_transport_topic_last.get(k)
            if prev is not None and mid < prev:
                kind = "order" if self.t.name == "embedded" else "order_scaleout"
                self.vio(kind, f"{where}: {mid} after {prev} on {topic}, transport {ti}")
            per_transport_topic_last[k] = max(prev or "", mid)
        # Required: every message whose commit certainly fell in a subscribed
        # window, minus those in flight at a drop the client's cursor skipped.
        end = c.end if c.end is not None else INF
        if end < INF:
            end = min(end, self.interrupted(c.transport, end))
        drops = [(c.transports[i].end, c.transports[i + 1]) for i in range(len(c.transports) - 1)]
        last_tr = c.transport
        if c.end is not None and last_tr.end is not None and last_tr.end_kind == "drop":
            drops.append((last_tr.end, None))
        for topic, ivs in c.subs.items():
            for iv in ivs:
                if iv.s_ok is None:
                    continue
                # A message still on its way when the window closed (an
                # unsubscribe sent, a close, a kick) is not required.
                stop = min(end, iv.u_send if iv.u_send is not None else INF)
                if iv.u_send is not None and iv.u_send < end:
                    # An unsubscribe while the notifier was stopped: what it
                    # held up was in flight when the window closed.
                    tr = next((t for t in c.transports if t.start <= iv.u_send
                               and (t.end is None or iv.u_send <= t.end)), None)
                    if tr is not None:
                        stop = min(stop, self.interrupted(tr, stop))
                stop -= self.flight
                pubs = pubs_by_topic.get(topic, [])
                first = bisect.bisect_right(self.p0s.get(topic, []), iv.s_ok)
                for p in pubs[first:]:
                    if p.p0 >= stop:
                        break  # sorted by p0, and p1 > p0
                    if not (p.p0 > iv.s_ok and p.p1 < stop) or p.id in got:
                        continue
                    excuse = self.excused(p, c, drops)
                    if excuse:
                        self.rep.stats[f"not required: {excuse}"] += 1
                        continue
                    kind = "missing"
                    self.vio(kind, f"{where}: {p.id} of {topic} published "
                                   f"{self.rel(p.p0)}..{self.rel(p.p1)} never received; subscribed "
                                   f"{iv.how} answered {self.rel(iv.s_ok)} until "
                                   f"{self.rel(iv.u_send)}; transports "
                                   + self.describe(c) + self.faults_near(p.p0, p.p1))

    def excused(self, p, c, drops):
        for drop_t, nxt in drops:
            if drop_t is None or p.p1 <= drop_t - self.grace or p.p0 > (
                    nxt.start if nxt else INF):
                continue
            if nxt is None:
                return "in flight at a final drop"
            kind, cur = nxt.cursor or ("none", None)
            if kind == "none":
                return "in flight at a drop resumed without lastID or ack"
            if cur is not None and p.id <= cur:
                return f"in flight at a drop, below the resume's {kind} cursor"
        return None

    def faults_near(self, t0, t1):
        near = [f"{what} at {self.rel(start)}" for start, end, what in self.m.faults
                if end >= t0 - 2 and start <= t1 + 2]
        return f"; faults around it: {', '.join(near)}" if near else ""

    def describe(self, c):
        parts = []
        for tr in c.transports:
            cur = f" cursor {tr.cursor[0]}={tr.cursor[1]}" if tr.cursor else ""
            parts.append(f"#{tr.index} {tr.node} {self.rel(tr.start)}..{self.rel(tr.end)} "
                         f"{tr.end_kind or ''}{cur}")
        return "; ".join(parts)

    async def after_leave(self):
        """I4: connections gone after the window; descriptors and memory back."""
        await asyncio.sleep(topo.RESUME_WINDOW_S + 2)
        self.check_procs()
        rng = random.Random(f"{self.seed}-{self.t.name}-leave")
        cids = [c.cid for c in self.m.conns]
        for cid in rng.sample(cids, min(len(cids), 200)):
            status, body = await self.api("GET", f"/api/v1/connections/{cid}")
            if status == 200:
                self.vio("conn_lingers", f"{cid} still listed {topo.RESUME_WINDOW_S + 2} s after "
                                         f"every client left: {body!r:.200}")
            status, body = await self.api("GET", f"/api/v1/subscribes?connectionID={cid}")
            if status == 200 and body:
                self.vio("subscription_lingers", f"{cid} still has {body!r:.200}")
        # Slack: descriptors +24 (log files, store/bus sockets reconnected
        # after faults, the epoll/eventfd of helper threads); RSS +64 MiB or
        # +50% (allocator caches, SQLite page cache, the dedupe window), and
        # under ASan +512 MiB (its quarantine keeps up to 256 MiB of freed
        # memory) -- a leak per connection still shows over that.
        for name, p in self.t.procs.items():
            if not p.running() or not p.baseline or p.baseline[0] is None:
                continue
            rss, fds = p.rss_kib(), p.fds()
            b_rss, b_fds = p.baseline
            self.rep.stats[f"{name} rss KiB baseline->after"] = f"{b_rss}->{rss}"
            self.rep.stats[f"{name} fds baseline->after"] = f"{b_fds}->{fds}"
            if fds is not None and b_fds is not None and fds > b_fds + 24:
                self.vio("fd_leak", f"{name}: {fds} descriptors after the clients left, "
                                    f"{b_fds} at start")
            slack = 512 * 1024 if self.sanitized else max(64 * 1024, b_rss // 2)
            if rss is not None and rss > b_rss + slack:
                self.vio("memory", f"{name}: RSS {rss} KiB after the clients left, {b_rss} KiB "
                                   f"at start (slack {slack} KiB)")

    def finish_processes(self):
        for name, p in self.t.procs.items():
            if p.exited_unexpectedly():
                self.check_procs()
            code = p.stop()
            if code not in (0,):
                self.vio("exit_status", f"{name} exited with {code} on SIGTERM:\n{p.tail(2500)}")
            for text in p.sanitizer_reports():
                self.vio("sanitizer", f"{name}:\n{text[:2500]}")


async def run_topology(kind, binary, seed, seconds, tmp_root, sanitized, replay, faults,
                       skip_actions):
    rep = Report(seed, kind, replay)
    tmp = Path(tempfile.mkdtemp(prefix=f"check-{kind}-", dir=tmp_root))
    t = topo.Embedded(tmp, binary) if kind == "embedded" else topo.Scaleout(tmp, binary)
    LIVE.append(t)
    run = None
    try:
        await asyncio.to_thread(t.start)
        run = Run(t, seed, seconds, rep, sanitized, faults, skip_actions)
        deadline = seconds + 240
        await asyncio.wait_for(run.main(), deadline)
        run.finish_processes()
    except Exception:
        rep.add("checker_error", traceback.format_exc())
        rep.broken = True
    finally:
        t.close()
    rep.notes.append(f"logs in {tmp}")
    return rep, tmp


LIVE = []  # topologies running, killed when the checker is interrupted


def interrupted(signum, frame):
    for t in LIVE:
        try:
            t.close()
        except Exception:
            pass
    print(f"checker: interrupted by signal {signum}; servers stopped", file=sys.stderr)
    os._exit(130)


def main():
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=120.0, help="the whole run (CHECK_S)")
    ap.add_argument("--topology", choices=["embedded", "scaleout", "both"], default="both")
    ap.add_argument("--bin", default=os.environ.get("HOUSTON_BIN", str(topo.ROOT / "build" / "houston")))
    ap.add_argument("--keep", action="store_true", help="keep the logs of a clean run")
    ap.add_argument("--faults", default=os.environ.get("CHECK_FAULTS", ""),
                    help="only these faults (comma list; 'none' for none), e.g. kill_redis")
    ap.add_argument("--skip-actions", default=os.environ.get("CHECK_SKIP", ""),
                    help="client actions not to take (comma list), e.g. frame_then_rst to look "
                         "past a known crash")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    kinds = ["embedded", "scaleout"] if args.topology == "both" else [args.topology]
    if "scaleout" in kinds and not (topo.have("redis-server") and topo.have("mariadbd")):
        print("checker: redis-server and mariadbd are needed for the scale-out topology",
              file=sys.stderr)
        return 2
    sanitized = bool(os.environ.get("HOUSTON_SANITIZED"))
    # Split so that both get about the same time under load: the scale-out
    # topology takes 12 s more to start and stop.
    shares = {"embedded": args.seconds, "scaleout": args.seconds}
    if len(kinds) == 2:
        shares = {"embedded": (args.seconds - 12) / 2, "scaleout": (args.seconds + 12) / 2}
    print(f"checker: seed {seed}, {args.seconds:.0f}s over {', '.join(kinds)}, {args.bin}"
          f"{' (sanitized)' if sanitized else ''}", flush=True)
    failed = broken = False
    reports = []
    for kind in kinds:
        per = shares[kind]
        replay = (f"make check SEED={seed} TOPOLOGY={kind} CHECK_S={per:.0f}"
                  f" HOUSTON_BIN={args.bin}")
        if kind == "scaleout" and os.environ.get("CHECK_REDIS"):
            replay += f" CHECK_REDIS={os.environ['CHECK_REDIS']}"
        faults = set(filter(None, args.faults.split(","))) or None
        if faults:
            replay += f" CHECK_FAULTS={args.faults}"
        skip = [a for a in args.skip_actions.split(",") if a]
        if skip:
            replay += f" CHECK_SKIP={args.skip_actions}"
        rep, tmp = asyncio.run(run_topology(kind, args.bin, seed, per, None, sanitized, replay,
                                            faults, skip))
        rep.print()
        reports.append((kind, rep))
        broken = broken or getattr(rep, "broken", False)
        if rep.kinds:
            failed = True
            # The logs stay; the databases go (MariaDB's alone is ~100 MB).
            shutil.rmtree(tmp / "mariadb" / "data", ignore_errors=True)
            shutil.rmtree(tmp / "appendonlydir", ignore_errors=True)
            print(f"   logs kept in {tmp}")
        elif not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        sys.stdout.flush()
    for kind, rep in reports:
        counts = ", ".join(f"{k} {len(v)}" for k, v in sorted(rep.kinds.items()))
        print(f"checker: {kind}: {counts or 'no violation'}")
    print(f"checker: seed {seed}: {'VIOLATIONS FOUND' if failed else 'no violation'}")
    return 2 if broken else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
