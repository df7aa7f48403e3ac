#!/usr/bin/env python3
"""Publish latency while retention prunes a large backlog (issue 17 item 1;
docs/performance.md, "Retention").

Builds an SQLite database holding OLD messages (default 1,000,000) created
two days ago, over BACKLOG_TOPICS topics (inserted with Python's sqlite3
into a file houston created, with their sequence rows), then starts
`houston serve --retention-age 1h` on it: the pruner removes the backlog in
steps of 1,000 rows while THREADS keep-alive clients publish to other
topics. Measures the publish latency (request to answer) for the time the
prune takes, and the same load on the same database without retention as the
baseline. Prints p50/p99/max of both, the prune's duration and rate, and the
file size before and after.

    HOUSTON_BIN=build/houston python3 bench/prune_latency.py [--old 1000000] [--threads 4]
"""
import argparse
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import BIN, free_port, wait_port  # noqa: E402

DIGITS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def time_part(ms):
    """The 10 characters of a ULID's time."""
    return "".join(DIGITS[(ms >> (5 * (9 - i))) & 31] for i in range(10))


def ulid(ms, topic, seq):
    """A ULID text of time ms; its randomness is decimal digits (valid
    Crockford characters) of topic and seq, so ids sort by (ms, topic, seq)."""
    return f"{time_part(ms)}{topic:04d}{seq:012d}"


def start(db, *extra, log):
    ws, api = free_port(), free_port()
    proc = subprocess.Popen([BIN, "serve", "--ws-addr", f"127.0.0.1:{ws}", "--api-addr",
                             f"127.0.0.1:{api}", "--db", f"sqlite:{db}", *extra],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    wait_port(api, proc, log, deadline=120)
    return proc, api


def stop(proc):
    proc.terminate()
    proc.wait(60)


def fill(db, old, topics):
    conn = sqlite3.connect(db)
    base = int(time.time() * 1000) - 2 * 24 * 3600 * 1000
    content = "o" * 200
    per = old // topics
    with conn:
        for t in range(topics):
            # 1,000 messages per millisecond: one time part per thousand rows.
            rows = ((ulid(base + i // 1000, t, i), f"old-{t}", content, "bench",
                     base + i // 1000) for i in range(per))
            conn.executemany("INSERT INTO messages (id, topic, content, author, created_at) "
                             "VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("INSERT OR REPLACE INTO topic_sequences (topic, last_id) VALUES (?, ?)",
                         (f"old-{t}", ulid(base + (per - 1) // 1000, t, per - 1)))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return per * topics


def metric(api, name):
    c = http.client.HTTPConnection("127.0.0.1", api, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return 0


def load(api, threads, stop_when, latencies, errors):
    def work(n):
        c = http.client.HTTPConnection("127.0.0.1", api, timeout=60)
        body = json.dumps({"topic": f"live-{n}", "content": "x" * 200, "author": "bench"})
        while not stop_when():
            t0 = time.perf_counter()
            c.request("POST", "/api/v1/messages", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            latencies.append(time.perf_counter() - t0)
            if r.status != 201:
                errors.append(r.status)
        c.close()
    ts = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    return ts


def summary(latencies):
    xs = sorted(latencies)
    if not xs:
        return "no samples"
    pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000  # noqa: E731
    return (f"{len(xs)} publishes, p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, "
            f"max {xs[-1] * 1000:.1f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", type=int, default=1_000_000)
    ap.add_argument("--backlog-topics", type=int, default=10)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="houston-prune-"))
    try:
        db = tmp / "houston.db"
        proc, _ = start(db, log=tmp / "create.log")  # the schema, then stop
        stop(proc)
        t0 = time.monotonic()
        n = fill(db, args.old, args.backlog_topics)
        print(f"backlog: {n} messages over {args.backlog_topics} topics, 2 days old, "
              f"written in {time.monotonic() - t0:.1f} s; file {os.path.getsize(db) / 1e6:.0f} MB")
        shutil.copy(db, tmp / "baseline.db")

        # Baseline: the same file and load, nothing to prune, for 10 s.
        proc, api = start(tmp / "baseline.db", log=tmp / "baseline.log")
        lat, errors = [], []
        end = time.monotonic() + 10
        for t in load(api, args.threads, lambda: time.monotonic() > end, lat, errors):
            t.join()
        stop(proc)
        print(f"baseline (no retention):   {summary(lat)}, errors {len(errors)}")

        proc, api = start(db, "--retention-age", "1h", log=tmp / "prune.log")
        started = time.monotonic()
        lat, errors, done = [], [], []

        def pruned_all():
            if done:
                return True
            if metric(api, "houston_messages_pruned_total") >= n:
                done.append(time.monotonic() - started)
                return True
            return False

        ts = load(api, args.threads, lambda: bool(done), lat, errors)
        while not pruned_all():
            time.sleep(0.2)
            if time.monotonic() - started > 900:
                done.append(None)
                break
        for t in ts:
            t.join()
        size_before = os.path.getsize(db)
        # The sweeps after the backlog give free pages back (1,024 a step).
        shrink_start, last = time.monotonic(), -1
        while time.monotonic() - shrink_start < 300 and os.path.getsize(db) != last:
            last = os.path.getsize(db)
            time.sleep(5)
        shrink = time.monotonic() - shrink_start
        stop(proc)
        took = done[0]
        print(f"while pruning {n}:     {summary(lat)}, errors {len(errors)}")
        if took:
            print(f"prune: {took:.1f} s ({n / took:.0f} messages/s); file {size_before / 1e6:.0f} MB "
                  f"when done, {os.path.getsize(db) / 1e6:.0f} MB after {shrink:.0f} s more")
        else:
            print("prune: did not finish within 900 s")
        print(f"load average: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
