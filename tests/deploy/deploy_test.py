#!/usr/bin/env python3
"""make deploy-test: the container image and the compose stack, built and run
as a user would, with nothing but Debian's packages (podman, podman-compose,
runc, mmdebstrap) and no registry (issue 19 item 2; docs/scaling.md,
"Containers").

1. A base image from `mmdebstrap --variant=minbase bookworm` with the apt
   sources this machine is configured with (read from its sources files),
   imported as debian:12-slim so that `FROM debian:12-slim` resolves locally.
2. Stand-ins for the mariadb:11 and redis:7 images the compose file names
   (tests/deploy/mariadb, tests/deploy/redis: Debian's servers, the same
   MARIADB_* variables and health check), tagged with those names.
3. `podman build --format docker` of deploy/Dockerfile (the docker format
   keeps HEALTHCHECK), every build with --pull=never.
4. `podman-compose up -d` of deploy/docker-compose.yml as it is in the
   repository, then `podman healthcheck run` on every service until all five
   are healthy (podman runs no health checks by itself without systemd).
5. Against the stack: the prototype's commands (a WebSocket on :9001,
   subscribe and publish on :9002 with the API key, the message arrives),
   `redis-cli publish forwarder-channel ...` reaches the connection, and the
   consumer container killed and started again in the middle of a burst
   loses nothing.
6. `podman-compose down -v`, and every container, volume, network and image
   this run made is removed (also on failure).

podman reads a containers.conf made here (CONTAINERS_CONF): runtime runc
(crun refuses this machine's hybrid cgroups) and default ulimits a container
may have here (nofile at this machine's hard limit; nproc at 4096, since
runc may not raise it to the host's value without CAP_SYS_RESOURCE).
Exit status 0 when everything passed."""
import asyncio
import http.client
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
IMAGES = {  # what this run builds, and tags
    "base": "docker.io/library/debian:12-slim",
    "mariadb": "docker.io/library/mariadb:11",
    "redis": "docker.io/library/redis:7",
    "houston": "localhost/houston:latest",
}
SERVICES = ["mysql", "redis", "publisher", "notifier", "consumer"]
WS_PORT, API_PORT = 9001, 9002
STARTED = time.monotonic()


def log(what):
    print(f"deploy-test [{time.monotonic() - STARTED:6.1f} s] {what}", flush=True)


def run(*args, check=True, timeout=900, quiet=False, **kw):
    if not quiet:
        log("$ " + " ".join(str(a) for a in args))
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise RuntimeError(f"{args[0]} {args[1] if len(args) > 1 else ''} failed "
                           f"({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def apt_sources():
    """This machine's Debian sources, as one-line entries (mmdebstrap's
    mirror arguments): from sources.list and deb822 .sources files."""
    lines = []
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file():
            continue
        if f.suffix == ".list" or f.name == "sources.list":
            for line in f.read_text().splitlines():
                if re.match(r"\s*deb\s", line) and "debian" in line:
                    lines.append(line.strip())
        elif f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", f.read_text()):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip()] = value.strip()
                if "deb" not in fields.get("Types", "").split() or \
                        fields.get("Enabled", "yes") == "no":
                    continue
                if "debian" not in fields.get("URIs", ""):
                    continue
                for uri in fields["URIs"].split():
                    for suite in fields.get("Suites", "").split():
                        lines.append(f"deb {uri} {suite} {fields.get('Components', 'main')}")
    if not lines:
        raise RuntimeError("no Debian apt sources configured on this machine")
    return lines


def containers_conf(tmp):
    nofile = subprocess.run(["bash", "-c", "ulimit -Hn"], capture_output=True,
                            text=True).stdout.strip()
    conf = tmp / "containers.conf"
    conf.write_text("[containers]\n"
                    f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n'
                    "[engine]\n"
                    'runtime = "runc"\n')
    return conf


def build_images(tmp):
    sources = apt_sources()
    log(f"base image from {len(sources)} apt source(s) of this machine")
    tarball = tmp / "base.tar"
    run("mmdebstrap", "--variant=minbase", "--quiet", "bookworm", tarball, *sources,
        timeout=1200)
    run("podman", "import", tarball, IMAGES["base"])
    tarball.unlink()
    # The three builds at once: the stand-ins mostly wait on apt downloads
    # while houston compiles.
    builds = [
        ["podman", "build", "--pull=never", "-t", IMAGES["mariadb"], ROOT / "tests/deploy/mariadb"],
        ["podman", "build", "--pull=never", "-t", IMAGES["redis"], ROOT / "tests/deploy/redis"],
        ["podman", "build", "--format", "docker", "--pull=never", "-f", ROOT / "deploy/Dockerfile",
         "-t", IMAGES["houston"], ROOT],
    ]
    procs = []
    for i, args in enumerate(builds):
        log("$ " + " ".join(str(a) for a in args))
        out = open(tmp / f"build-{i}.log", "w")
        procs.append((args, out, subprocess.Popen([str(a) for a in args], stdout=out,
                                                  stderr=subprocess.STDOUT)))
    failed = []
    for args, out, proc in procs:
        if proc.wait(1800) != 0:
            failed.append(args)
        out.close()
    if failed:
        for i in range(len(builds)):
            print((tmp / f"build-{i}.log").read_text()[-3000:])
        raise RuntimeError(f"image builds failed: {failed}")
    log("images built")


def container_of(service):
    # podman-compose 1.0.3 names the project after the directory, not the
    # file's name:, so the containers are found by their compose file.
    out = run("podman", "ps", "-a",
              "--filter", f"label=com.docker.compose.project.config_files={COMPOSE}",
              "--filter", f"label=com.docker.compose.service={service}",
              "--format", "{{.Names}}", quiet=True).stdout.split()
    if not out:
        raise RuntimeError(f"no container for service {service}")
    return out[0]


def wait_healthy(deadline_s=240):
    end = time.monotonic() + deadline_s
    pending = set(SERVICES)
    while pending and time.monotonic() < end:
        for service in sorted(pending):
            name = container_of(service)
            if run("podman", "healthcheck", "run", name, check=False, quiet=True).returncode == 0:
                log(f"{service} ({name}) healthy")
                pending.discard(service)
        time.sleep(1)
    if pending:
        for service in pending:
            name = container_of(service)
            print(run("podman", "logs", "--tail", "40", name, check=False, quiet=True).stderr)
        raise RuntimeError(f"not healthy after {deadline_s} s: {sorted(pending)}")


def api(method, path, body=None, key=None):
    conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=10)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data.strip() else None
    finally:
        conn.close()


async def frames_until(ws, want, timeout):
    """Frames until want(frame) holds; returns them."""
    got = []
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"timed out; got {len(got)} frames, last {got[-1:]}")
        raw = await asyncio.wait_for(ws.recv(), left)
        frame = json.loads(raw) if raw.startswith("{") else {"text": raw}
        got.append(frame)
        if want(frame, got):
            return got


async def check_stack(key):
    ws = await websockets.connect(f"ws://127.0.0.1:{WS_PORT}/api/v1/ws")
    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert hello["type"] == "connected", hello
    cid = hello["connectionID"]
    log(f"WebSocket connected: {cid}")

    # The prototype's commands: subscribe and publish with the API key.
    status, _ = api("POST", "/api/v1/subscribes", {"topic": "deploy", "connectionID": cid}, key)
    assert status in (200, 201, 204), status
    status, unauth = api("POST", "/api/v1/messages", {"topic": "deploy", "content": "x"})
    assert status == 401, (status, unauth)
    status, msg = api("POST", "/api/v1/messages",
                      {"topic": "deploy", "content": "Hello Houston.", "author": "ops"}, key)
    assert status == 201, (status, msg)
    await frames_until(ws, lambda f, _: f.get("type") == "message"
                       and f["message"]["id"] == msg["id"], 20)
    log("a published message arrived")

    # The prototype's push, through Redis.
    payload = f"forwarded-{secrets.token_hex(4)}"
    run("podman", "exec", container_of("redis"), "redis-cli", "publish", "forwarder-channel",
        json.dumps({"connectionID": cid, "payload": payload}))
    await frames_until(ws, lambda f, _: payload in json.dumps(f), 20)
    log("redis-cli publish forwarder-channel reached the connection")

    # The consumer killed and started again in the middle of a burst.
    consumer = container_of("consumer")
    ids = []
    conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=30)
    for i in range(400):
        if i == 150:
            run("podman", "kill", consumer)
        if i == 250:
            run("podman", "start", consumer)
        conn.request("POST", "/api/v1/messages",
                     json.dumps({"topic": "deploy", "content": f"burst {i}"}),
                     {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 201, (resp.status, body)
        ids.append(json.loads(body)["id"])
    conn.close()
    want = set(ids)

    def all_there(frame, got):
        if frame.get("type") == "message":
            want.discard(frame["message"]["id"])
        return not want
    try:
        await frames_until(ws, all_there, 120)
    except RuntimeError:
        raise RuntimeError(f"{len(want)} of {len(ids)} messages of the burst never arrived")
    log(f"all {len(ids)} messages of the burst arrived across the consumer's restart")
    await ws.close()


def podman_set(kind):
    fmt = {"container": "{{.ID}}", "volume": "{{.Name}}", "network": "{{.Name}}",
           "image": "{{.ID}}"}[kind]
    cmd = {"container": ["ps", "-a"], "volume": ["volume", "ls"], "network": ["network", "ls"],
           "image": ["images", "-a"]}[kind]
    return set(run("podman", *cmd, "--format", fmt, quiet=True).stdout.split())


def main():
    tmp = Path(tempfile.mkdtemp(prefix="houston-deploy-"))
    os.environ["CONTAINERS_CONF"] = str(containers_conf(tmp))
    before = {k: podman_set(k) for k in ("container", "volume", "network", "image")}
    key = secrets.token_hex(32)
    env = dict(os.environ, HOUSTON_API_KEY=key)
    env.pop("HOUSTON_JWT_SECRET", None)
    compose = ["podman-compose", "-f", COMPOSE]
    ok = False
    try:
        build_images(tmp)
        run(*compose, "up", "-d", env=env, cwd=COMPOSE.parent)
        wait_healthy()
        asyncio.run(asyncio.wait_for(check_stack(key), 300))
        ok = True
    finally:
        if not ok:
            for service in SERVICES:
                try:
                    name = container_of(service)
                    out = run("podman", "logs", "--tail", "30", name, check=False, quiet=True)
                    print(f"---- {service} ----\n{out.stdout}{out.stderr}")
                except Exception as e:  # noqa: BLE001 - best effort
                    print(f"---- {service}: {e}")
        run(*compose, "down", "-v", env=env, cwd=COMPOSE.parent, check=False)
        for name in IMAGES.values():
            run("podman", "rmi", "-f", name, check=False)
        run("podman", "image", "prune", "-f", check=False)  # the build stages
        left = {k: podman_set(k) - before[k] for k in before}
        for kind, names in left.items():  # what is left of this run
            for name in names:
                run("podman", {"container": "rm", "volume": "volume", "network": "network",
                               "image": "rmi"}[kind],
                    *(["rm"] if kind in ("volume", "network") else []), "-f", name,
                    check=False)
        left = {k: sorted(podman_set(k) - before[k]) for k in before}
        if any(left.values()):
            print(f"deploy-test: left behind: {left}")
            ok = False
        subprocess.run(["rm", "-rf", str(tmp)])
    log("passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
