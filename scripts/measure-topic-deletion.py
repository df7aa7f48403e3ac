#!/usr/bin/env python3
"""What deleting a large topic costs publishes (docs/limits.md, "Retention"):
fills a SQLite file with N messages of topic "big", starts houston serve on
it, publishes to another topic over one keep-alive connection and, after 3 s,
deletes "big"; prints the deletion's time and the publish latency before and
during it. Usage: scripts/measure-topic-deletion.py [BIN] [N]"""
import http.client
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
BIN = sys.argv[1] if len(sys.argv) > 1 else "build/houston"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
TMP = tempfile.mkdtemp(prefix="houston-deletion-")
db = os.path.join(TMP, "m.db")
def free():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def start():
    ws, api = free(), free()
    p = subprocess.Popen([BIN, "serve", "--db", "sqlite:" + db, "--ws-addr", f"127.0.0.1:{ws}", "--api-addr", f"127.0.0.1:{api}"],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(TMP, "serve.log"), "a"))
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", api), 0.2).close(); return p, api
        except OSError: time.sleep(0.05)
    raise SystemExit("no start")
p, api = start(); p.terminate(); p.wait()
con = sqlite3.connect(db)
ALPH = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
def ulid(ms, n):
    t = ""; x = ms
    for _ in range(10): t = ALPH[x % 32] + t; x //= 32
    r = ""; y = n
    for _ in range(16): r = ALPH[y % 32] + r; y //= 32
    return t + r
base = int(time.time() * 1000) - 3600_000
rows = ((ulid(base, i), "big", "x" * 100, "m", base) for i in range(N))
con.executemany("INSERT INTO messages (id, topic, content, author, created_at) VALUES (?,?,?,?,?)", rows)
con.execute("INSERT INTO topic_sequences (topic, last_id) VALUES ('big', ?)", (ulid(base, N - 1),))
con.commit(); con.close()
p, api = start()
lat, stop = [], threading.Event()
def publisher(out):
    c = http.client.HTTPConnection("127.0.0.1", api, timeout=30)
    while not stop.is_set():
        t0 = time.perf_counter()
        c.request("POST", "/api/v1/messages", json.dumps({"topic": "other", "content": "y"}), {"Content-Type": "application/json"})
        r = c.getresponse(); r.read(); assert r.status == 201
        out.append((t0, time.perf_counter() - t0))
th = threading.Thread(target=publisher, args=(lat,)); th.start()
time.sleep(3)
c = http.client.HTTPConnection("127.0.0.1", api, timeout=600)
d0 = time.perf_counter()
c.request("DELETE", "/api/v1/topics/big"); r = c.getresponse(); r.read()
d1 = time.perf_counter()
time.sleep(1)
stop.set(); th.join(); p.terminate(); p.wait()
def q(v, x): v = sorted(v); return v[min(len(v) - 1, int(x * len(v)))] * 1000
before = [l for t, l in lat if t < d0]; during = [l for t, l in lat if d0 <= t < d1]
print(f"delete of {N} rows: status {r.status}, {d1 - d0:.2f} s ({N / (d1 - d0):.0f} rows/s)")
for name, v in (("before", before), ("during", during)):
    print(f"publish {name}: n={len(v)} p50={q(v, .5):.1f} ms p99={q(v, .99):.1f} ms max={max(v) * 1000:.1f} ms")
shutil.rmtree(TMP)
