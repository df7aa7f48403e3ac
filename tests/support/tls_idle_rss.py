"""Memory of houston per idle WebSocket connection, plain ws:// versus wss://
(the numbers in docs/security.md). Opens N idle connections to a fresh server
of each kind and prints the growth of VmRSS and of malloc's bytes in use (read
with gdb's `call malloc_stats()`, so gdb and ptrace rights are needed).

usage: /usr/bin/python3 tests/support/tls_idle_rss.py build/houston PKI_DIR 2000
PKI_DIR holds ca.pem, server.pem and server.key for localhost (made as in
tests/e2e/test_tls.py). Writes its scratch files to a temporary directory."""
import asyncio, json, os, re, resource, socket, ssl, subprocess, sys, tempfile, time
import websockets

BIN, PKI, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
TMP = tempfile.mkdtemp(prefix="houston-rss-")
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1])

async def measure(tls):
    ws_port, api_port = free_port(), free_port()
    args = [BIN, "serve", "--ws-addr", f"127.0.0.1:{ws_port}", "--api-addr", f"127.0.0.1:{api_port}",
            "--db", f"sqlite:{TMP}/h-{tls}.db", "--log-level", "warn", "--ping-interval", "0"]
    if tls: args += ["--tls-cert", f"{PKI}/server.pem", "--tls-key", f"{PKI}/server.key"]
    errf = open(f"{TMP}/err-{tls}.txt", "w")
    proc = subprocess.Popen(args, stderr=errf)
    def inuse():
        before = open(f"{TMP}/err-{tls}.txt").read().count("Total (incl. mmap):")
        subprocess.run(["gdb", "-p", str(proc.pid), "-batch", "-ex", "call (void)malloc_stats()"],
                       capture_output=True)
        while open(f"{TMP}/err-{tls}.txt").read().count("max mmap bytes") <= before:
            time.sleep(0.1)
        txt = open(f"{TMP}/err-{tls}.txt").read().split("Total (incl. mmap):")[-1]
        return int(re.search(r"in use bytes\s*=\s*(\d+)", txt).group(1))
    try:
        await asyncio.sleep(0.5)
        ctx = ssl.create_default_context(cafile=f"{PKI}/ca.pem") if tls else None
        url = f"{'wss' if tls else 'ws'}://localhost:{ws_port}/api/v1/ws"
        # warm-up: a few connections, so one-time allocations are in the baseline
        warm = [await websockets.connect(url, ssl=ctx) for _ in range(20)]
        for w in warm: await w.recv()
        for w in warm: await w.close()
        await asyncio.sleep(0.5)
        base = rss_kib(proc.pid); base_use = inuse()
        conns = []
        sem = asyncio.Semaphore(50)
        async def one():
            async with sem:
                w = await websockets.connect(url, ssl=ctx, ping_interval=None)
                json.loads(await w.recv())
                conns.append(w)
        await asyncio.gather(*[one() for _ in range(N)])
        await asyncio.sleep(1.0)
        after = rss_kib(proc.pid); after_use = inuse()
        print(f"{'wss' if tls else 'ws '}: {N} idle connections: RSS {base} -> {after} KiB, "
              f"{(after - base) * 1024 / N:.0f} bytes per connection; malloc in use {(after_use - base_use) / N:.0f} bytes per connection", flush=True)
        for w in conns: await w.close()
    finally:
        proc.terminate(); proc.wait(15)

async def main():
    await measure(False)
    await measure(True)
asyncio.run(main())
