#!/usr/bin/env python3
"""Publish throughput, single publishes against batches (issue 17 item 4;
docs/performance.md, "Batch publish").

Starts `houston serve` on a temporary SQLite file, or with --mariadb a
throwaway MariaDB and Redis (tests/e2e/services.py) and one `houston
publisher`; then CLIENTS keep-alive http.client connections publish MESSAGES
messages (64-byte contents, round-robin over TOPICS topics), one per
POST /api/v1/messages, or SIZE per POST /api/v1/messages/batch, for each
--size given (1 = single publishes). A fresh server per size.

    HOUSTON_BIN=build/houston python3 bench/batch_publish.py --size 1 --size 100 --size 1000
    HOUSTON_BIN=build/houston python3 bench/batch_publish.py --mariadb --size 1 --size 100

Prints one line per size: store, size, messages, seconds, messages/s, and the
p50/p99 of a request (request to answer: each answer follows the commit).
"""
import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import BIN, free_port, wait_port  # noqa: E402
from services import MariaDB, Redis  # noqa: E402


def worker(port, first, count, size, topics, latencies, errors):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    try:
        i = first
        while i < first + count:
            n = min(size, first + count - i)
            messages = [{"topic": f"t{(i + k) % topics}", "content": "x" * 64, "author": "bench"}
                        for k in range(n)]
            if size == 1:
                path, body = "/api/v1/messages", json.dumps(messages[0])
            else:
                path, body = "/api/v1/messages/batch", json.dumps({"messages": messages})
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            latencies.append(time.perf_counter() - started)
            if r.status != 201:
                errors.append(r.status)
                return
            i += n
    finally:
        conn.close()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else 0.0


def run(args, size):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port = free_port()
        log = tmp / "houston.log"
        services = []
        if args.mariadb:
            redis, maria = Redis(tmp), MariaDB(tmp)
            services = [redis, maria]
            cmd = [BIN, "publisher", "--db", maria.url, "--redis", redis.url,
                   "--api-addr", f"127.0.0.1:{port}"]
        else:
            cmd = [BIN, "serve", "--db", f"sqlite:{tmp / 'bench.db'}",
                   "--api-addr", f"127.0.0.1:{port}", "--ws-addr", f"127.0.0.1:{free_port()}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        try:
            wait_port(port, proc, log)
            for _ in range(100):  # the bus and the store up (scale-out: Redis)
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/readyz")
                ready = c.getresponse().status == 200
                c.close()
                if ready:
                    break
                time.sleep(0.1)
            per = args.messages // args.clients
            latencies, errors = [], []
            threads = [threading.Thread(target=worker,
                                        args=(port, c * per, per, size, args.topics, latencies,
                                              errors))
                       for c in range(args.clients)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - started
            if errors:
                raise SystemExit(f"size {size}: HTTP {errors[:5]}\n{log.read_text()[-2000:]}")
            total = per * args.clients
            print(f"{'mariadb' if args.mariadb else 'sqlite'}\tsize {size}\t{total} messages\t"
                  f"{seconds:.2f} s\t{total / seconds:,.0f} messages/s\t"
                  f"request p50 {percentile(latencies, 0.5) * 1000:.1f} ms\t"
                  f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms", flush=True)
        finally:
            proc.terminate()
            proc.wait(15)
            for s in services:
                s.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, action="append",
                        help="messages per request (1: single publishes); repeatable")
    parser.add_argument("--messages", type=int, default=40000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--mariadb", action="store_true",
                        help="a scale-out publisher on MariaDB and Redis instead of serve")
    args = parser.parse_args()
    for size in args.size or [1, 100, 1000]:
        run(args, size)


if __name__ == "__main__":
    main()
