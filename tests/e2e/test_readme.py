"""The acceptance flow of the issue, command for command: the HTTPie commands
run through a shell as a user would type them (only the host, the port and
--ignore-stdin differ), with a websockets client in the role of wscat."""
import asyncio
import json
import subprocess

import websockets

from conftest import expect_silence, recv_json, run

TOPIC = "01GXZE2X4BMVE0G2H50KZ8REQD"


def sh(command):
    """Runs one shell command line; returns its stdout."""
    out = subprocess.run(["bash", "-o", "pipefail", "-c", command], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, f"{command}\nexit {out.returncode}\n{out.stderr}"
    return out.stdout


def httpie(line, api):
    """A command line of the issue, pointed at this server, printing status,
    headers and body."""
    line = line.replace("http://localhost:9002", api)
    return line.replace("http ", "http --ignore-stdin --pretty=none --print=hb ", 1)


def status_and_body(output):
    head, _, body = output.replace("\r\n", "\n").partition("\n\n")
    return int(head.split()[1]), (json.loads(body) if body.strip() else None)


def test_the_issue_flow_step_by_step(fresh_server):
    srv = fresh_server()
    api = srv.api

    def step(line):
        return status_and_body(sh(httpie(line, api)))

    async def go():
        # wscat -c localhost:9001/api/v1/ws --slash
        ws = await websockets.connect(f"ws://127.0.0.1:{srv.ws_port}/api/v1/ws")
        hello = await recv_json(ws)
        assert set(hello) == {"type", "connectionID", "resumeToken"}
        assert hello["type"] == "connected"
        cid = hello["connectionID"]

        # 1. subscribe
        status, sub = await asyncio.to_thread(
            step, f"http POST http://localhost:9002/api/v1/subscribes topic={TOPIC} "
                  f"connectionID={cid}")
        assert status == 201 and sub["topic"] == TOPIC and sub["connectionID"] == cid

        # 2. publish; the subscriber gets it
        status, msg = await asyncio.to_thread(
            step, f'http POST http://localhost:9002/api/v1/publish topic={TOPIC} '
                  f'content="Hello Houston." sender="alice"')
        assert status == 201
        assert (msg["topic"], msg["content"], msg["author"]) == (TOPIC, "Hello Houston.", "alice")
        assert await recv_json(ws) == {"type": "message", "message": msg}

        # 3. the history after the cursor of the issue, oldest first
        status, page = await asyncio.to_thread(
            step, f"http GET http://localhost:9002/api/v1/messages "
                  f"lastID==01GY1AZN62M9PDQDWGYG3VW6DJ topic=={TOPIC} limit==10 forward==true")
        assert status == 200 and page == {"messages": [msg], "next": None}

        # 4. list, then remove one subscription
        status, subs = await asyncio.to_thread(
            step, f"http GET http://localhost:9002/api/v1/subscribes connectionID=={cid}")
        assert status == 200 and subs == [sub]
        status, body = await asyncio.to_thread(
            step, f"http DELETE http://localhost:9002/api/v1/subscribes topic={TOPIC} "
                  f"connectionID={cid}")
        assert status == 204 and body is None

        # 5. remove all of the connection's
        status, body = await asyncio.to_thread(
            step, f"http DELETE http://localhost:9002/api/v1/subscribes connectionID={cid}")
        assert status == 204 and body is None

        # 6. create a message and read it back by id, through jq and xargs
        out = await asyncio.to_thread(sh, (
            f"http --ignore-stdin POST {api}/api/v1/messages topic={TOPIC} "
            f"content=\"Hello Houston.\" author=\"alice\" | jq -r '.id' | "
            f"xargs -I {{}} http --ignore-stdin GET {api}/api/v1/messages/{{}} topic=={TOPIC}"))
        got = json.loads(out)
        assert (got["topic"], got["content"], got["author"]) == (TOPIC, "Hello Houston.", "alice")
        assert got["id"] > msg["id"]

        # 7. the notification of the tour reaches the socket as is
        status, _ = await asyncio.to_thread(
            step, f'http POST http://localhost:9002/api/v1/notification connectionID={cid} '
                  f'payload="Hello Houston"')
        assert status == 202
        assert await asyncio.wait_for(ws.recv(), 5) == "Hello Houston"
        await expect_silence(ws)  # step 6 was not pushed: no subscription is left

        status, page = await asyncio.to_thread(
            step, f"http GET http://localhost:9002/api/v1/messages topic=={TOPIC} "
                  f"forward==true")
        assert [m["id"] for m in page["messages"]] == [msg["id"], got["id"]]
        await ws.close()
    run(go())
