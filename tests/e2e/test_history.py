"""History: pagination both ways with its edges, get by id."""
import time

import pytest

from conftest import call, http


@pytest.fixture(scope="module")
def history(server):
    """25 messages, each in a millisecond of its own, and a neighbour."""
    topic = "hist-topic"
    ids = []
    for i in range(25):
        status, msg = call(server, "POST", "/api/v1/messages",
                           {"topic": topic, "content": f"m{i}", "author": "a"})
        assert status == 201
        ids.append(msg["id"])
        time.sleep(0.002)
    # a neighbour topic that must never show up
    status, _ = call(server, "POST", "/api/v1/messages", {"topic": "hist-other", "content": "x"})
    assert status == 201
    return topic, ids


def page(server, topic, *params):
    r = http("GET", f"{server.api}/api/v1/messages", f"topic=={topic}", *params)
    assert r.status == 200, r
    return [m["id"] for m in r.json["messages"]], r.json["next"]


def test_forward_walk_from_the_start(server, history):
    topic, ids = history
    got, nxt = page(server, topic, "limit==10", "forward==true")
    assert got == ids[:10] and nxt == ids[9]
    got, nxt = page(server, topic, "limit==10", "forward==true", f"lastID=={nxt}")
    assert got == ids[10:20] and nxt == ids[19]
    got, nxt = page(server, topic, "limit==10", "forward==true", f"lastID=={nxt}")
    assert got == ids[20:] and nxt is None


def test_backward_walk_from_the_newest(server, history):
    topic, ids = history
    got, nxt = page(server, topic, "limit==10", "forward==false")
    assert got == ids[::-1][:10] and nxt == ids[15]
    got, nxt = page(server, topic, "limit==10", f"lastID=={nxt}")  # forward defaults to false
    assert got == ids[::-1][10:20]
    got, nxt = page(server, topic, "limit==10", f"lastID=={nxt}")
    assert got == ids[::-1][20:] and nxt is None


def test_edges(server, history):
    topic, ids = history
    assert page(server, topic, "forward==true", f"lastID=={ids[-1]}") == ([], None)
    assert page(server, topic, "forward==false", f"lastID=={ids[0]}") == ([], None)
    # a cursor older than everything, as in the README
    got, nxt = page(server, topic, "forward==true", "lastID==01GY1AZN62M9PDQDWGYG3VW6DJ",
                    "limit==10")
    assert got == ids[:10]
    assert page(server, topic, "forward==false", "lastID==01GY1AZN62M9PDQDWGYG3VW6DJ") == ([], None)
    # exactly the remaining messages: the walk ends with null
    got, nxt = page(server, topic, "forward==true", f"lastID=={ids[14]}", "limit==10")
    assert got == ids[15:] and nxt is None
    got, nxt = page(server, topic, "limit==1", "forward==true")
    assert got == ids[:1] and nxt == ids[0]
    got, _ = page(server, topic)  # defaults: 10, newest first
    assert got == ids[::-1][:10]
    assert page(server, "hist-empty", "forward==true") == ([], None)


def test_page_bounds_are_checked(server, history):
    topic, _ = history
    for limit in ("0", "1001", "abc", "-5"):
        r = http("GET", f"{server.api}/api/v1/messages", f"topic=={topic}", f"limit=={limit}")
        assert r.status == 400 and "limit" in r.json["error"]["message"], limit
    got, _ = page(server, topic, "limit==1000")
    assert len(got) == 25
    r = http("GET", f"{server.api}/api/v1/messages", f"topic=={topic}", "forward==maybe")
    assert r.status == 400 and "forward" in r.json["error"]["message"]
    r = http("GET", f"{server.api}/api/v1/messages", f"topic=={topic}", "lastID==nope")
    assert r.status == 400 and "lastID" in r.json["error"]["message"]
    r = http("GET", f"{server.api}/api/v1/messages")
    assert r.status == 400 and "topic" in r.json["error"]["message"]


def test_get_by_id(server, history):
    topic, ids = history
    r = http("GET", f"{server.api}/api/v1/messages/{ids[3]}", f"topic=={topic}")
    assert r.status == 200 and r.json["id"] == ids[3] and r.json["content"] == "m3"
    r = http("GET", f"{server.api}/api/v1/messages/{ids[3].lower()}")
    assert r.status == 200 and r.json["id"] == ids[3]
    r = http("GET", f"{server.api}/api/v1/messages/{ids[3]}", "topic==hist-other")
    assert r.status == 404 and r.json["error"]["code"] == "not_found"
    r = http("GET", f"{server.api}/api/v1/messages/01GY1AZN62M9PDQDWGYG3VW6DJ")
    assert r.status == 404
    r = http("GET", f"{server.api}/api/v1/messages/not-a-ulid")
    assert r.status == 400 and r.json["error"]["code"] == "invalid_field"


def test_backward_from_a_cursor_in_the_middle(server, history):
    topic, ids = history
    got, nxt = page(server, topic, "limit==5", "forward==false", f"lastID=={ids[12]}")
    assert got == ids[11:6:-1] and nxt == ids[7]
    got, nxt = page(server, topic, "limit==5", "forward==true", f"lastID=={ids[12]}")
    assert got == ids[13:18] and nxt == ids[17]


def test_cursors_are_case_insensitive(server, history):
    topic, ids = history
    got, _ = page(server, topic, "limit==3", "forward==true", f"lastID=={ids[4].lower()}")
    assert got == ids[5:8]


def test_a_cursor_between_messages_need_not_exist(server, history):
    """A cursor that is no message's id (the largest id of the millisecond of
    the 10th message) still splits the history at its place."""
    topic, ids = history
    cursor = ids[9][:10] + "Z" * 16
    assert ids[9] < cursor < ids[10]  # the fixture published them 2 ms apart
    got, _ = page(server, topic, "limit==3", "forward==true", f"lastID=={cursor}")
    assert got == ids[10:13]
    got, _ = page(server, topic, "limit==3", "forward==false", f"lastID=={cursor}")
    assert got == ids[9:6:-1]


def test_a_topic_only_lists_its_own_messages(server, history):
    topic, ids = history
    got, nxt = page(server, "hist-other", "forward==true")
    assert len(got) == 1 and got[0] not in ids and nxt is None
