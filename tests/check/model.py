"""What the checker records while it runs: publishes, subscriptions as the
client saw them, connections and their transports (resumes), with the
monotonic times the checks compare."""
import time
from collections import defaultdict

INF = float("inf")
now = time.monotonic

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid_floor(ms):
    """The smallest ULID of millisecond ms (its random part all zero)."""
    out = ""
    for _ in range(10):
        out = CROCKFORD[ms % 32] + out
        ms //= 32
    return out + "0" * 16


def ulid_ms(ulid):
    ms = 0
    for c in ulid[:10]:
        ms = ms * 32 + CROCKFORD.index(c)
    return ms


class Pub:
    """One logical publish (all attempts of one Idempotency-Key count as one)."""
    __slots__ = ("topic", "content", "key", "p0", "p1", "status", "id", "mode")

    def __init__(self, topic, content, key, mode):
        self.topic, self.content, self.key, self.mode = topic, content, key, mode
        self.p0 = None  # first attempt sent
        self.p1 = None  # the 2xx answer received; None without one
        self.status = None
        self.id = None


class Interval:
    """One subscription of a connection to a topic, as the client saw it:
    s_send/s_ok the subscribe sent/answered 2xx (s_ok None: outcome unknown,
    then nothing is required of it but it is allowed), u_send/u_ok the
    unsubscribe (None: not unsubscribed, or its outcome unknown)."""
    __slots__ = ("s_send", "s_ok", "u_send", "u_ok", "how")

    def __init__(self, s_send, how):
        self.s_send, self.how = s_send, how
        self.s_ok = self.u_send = self.u_ok = None


class Transport:
    """One TCP connection of a logical connection (the first, or a resume)."""
    __slots__ = ("index", "node", "start", "end", "end_kind", "cursor", "drop_before")

    def __init__(self, index, node, start, cursor=None, drop_before=None):
        self.index, self.node, self.start = index, node, start
        self.end = None
        self.end_kind = None
        # How the resume that opened it chose where to replay from:
        # ("id", L) lastID=L, ("ack", A) no lastID with A the highest ack
        # sent, ("none", None) neither; None for a fresh connection.
        self.cursor = cursor
        self.drop_before = drop_before  # when the transport before it dropped


class Conn:
    """A logical connection: one connectionID across any number of resumes."""

    def __init__(self, model, cid, token, node, start, kind="ws"):
        self.cid, self.token, self.kind = cid, token, kind
        self.tokens = [token] if token else []
        self.transports = [Transport(0, node, start)]
        self.subs = defaultdict(list)  # topic -> [Interval]
        self.received = []  # (id, topic, transport index, time)
        self.end = None  # required deliveries stop here (told, closed, given up)
        self.end_reason = None
        self.kick_send = None
        self.max_ack = None
        self.acked = False
        self.impaired_since = None
        model.conns.append(self)

    @property
    def transport(self):
        return self.transports[-1]

    def finish(self, at, reason):
        if self.end is None:
            self.end, self.end_reason = at, reason

    def subscribed_topics(self):
        return [t for t, ivs in self.subs.items() if ivs and ivs[-1].u_send is None]


class Model:
    def __init__(self):
        self.pubs = []
        self.by_id = {}
        self.by_content = {}
        self.conns = []
        self.faults = []  # (start, end, what)
        self.closed_tokens = []  # (time, token, cid) of connections ended for good
        self.last_receipt = now()
        self.stop = False  # the load is over
        self.settle = False  # clients: stop acting, be attached
