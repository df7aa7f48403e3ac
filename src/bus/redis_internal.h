/* redis_internal.h - what the files of the Redis bus share, and nothing
 * outside src/bus/redis*.c may include (libuv's unix/internal.h, H2O's
 * *_internal.h). Start here: the keys, the links and the bus struct.
 *
 * The bus on Redis (scale-out mode) goes through hiredis's asynchronous API
 * on the libuv loop (redis_uv.c), so the loop never waits on Redis. One file
 * per mechanism:
 *   redis.c            the bus object: open (URL), the ops table, close, the
 *                      reply helpers and done callbacks the others share
 *   redis_link.c       links: connect, deadline, backoff, reconnect; what
 *                      each link does when it is (back) up
 *   redis_scripts.c    the Lua scripts: loaded once per (re)connect, called
 *                      by SHA (EVALSHA), loaded again on NOSCRIPT
 *   redis_events.c     events: the publisher's outbox (to the topic's
 *                      partition), the consumer groups, the event read
 *                      script, XAUTOCLAIM, fenced acks
 *   redis_leases.c     partitions: the agreed count, consumers' registry and
 *                      heartbeat, leases with fencing tokens, balance,
 *                      take-over and clean hand-over
 *   redis_node.c       node streams: commands appended with seq, a node's
 *                      read/check/start, gap detection, forwarder channel
 *   redis_directory.c  directory (conns, topic sets, pend), its resync after
 *                      a reconnect, heartbeats and cleanup of dead nodes
 * docs/internals/bus.md is the design note.
 *
 * Keys, streams and channels (docs/scaling.md):
 *   houston:partitions        the partition count N of the deployment, set
 *                             (SET NX) by the first process; one that
 *                             disagrees stops (hs_bus_redis_options_t)
 *   houston:{p<p>}:events     partition p's stream of "message created"
 *                             events (p = FNV-1a(topic) mod N, partition.h);
 *                             read by the holder of its lease in the consumer
 *                             group houston:consumers (XREADGROUP through the
 *                             event read script), acknowledged (fenced) after
 *                             the hand-off; entries left pending by a holder
 *                             that stopped are claimed (XAUTOCLAIM) by the
 *                             next holder before anything new
 *   houston:{p<p>}:lease      "<consumer>:<token>": the one consumer that
 *                             processes partition p; expires after 3
 *                             heartbeats unless renewed
 *   houston:{p<p>}:fence      INCR counter: the fencing token of each take
 *                             of the lease (only grows)
 *     The hash tag {p<p>} puts a partition's keys in one Redis Cluster slot;
 *     every partition script touches only its KEYS, all of that slot.
 *   houston:{consumers}:set   set of the consumers that registered
 *   houston:{consumers}:alive:<name>  a consumer's heartbeat (expires
 *                             after 3 intervals): the live ones share the
 *                             partitions (one slot, for the one script that
 *                             removes a dead one from the set)
 *   houston:events            the stream of versions before partitions: no
 *                             longer written nor read (docs/scaling.md,
 *                             "Upgrading")
 *   houston:node:<node>       stream of commands for one notifier node (XREAD)
 *   houston:nodeseq:<node>    number of the last command appended to it
 *   houston:conns             hash: connection id -> node
 *   houston:topic:<topic>     set of the nodes that hold subscribers of topic
 *   houston:pend:<node>:<t>   subscribes on their way to node for topic t: the
 *                             node keeps topic t routed while one is pending
 *   houston:nodes             set of the notifier nodes
 *   houston:alive:<node>      a node's heartbeat (expires after 3 intervals)
 *   houston:nodeconns:<node>  connections of a node   } so a dead node's
 *   houston:nodetopics:<node> topics of a node        } entries can be found
 *   houston:cleanup:<node>    lock: one survivor cleans up a dead node
 *   forwarder-channel         pub/sub channel of the prototype: every node
 *                             hears {"connectionID":…,"payload":…}
 * Streams are capped with MAXLEN ~ (--node-stream-max, --event-stream-max)
 * so Redis memory stays bounded.
 *
 * A capped stream can drop entries its reader has not read yet (a stalled
 * notifier, consumers down), and Redis can lose them all (a restart without
 * persistence). Neither may go unnoticed (docs/recovery.md, "Gaps"):
 *   - every command appended to a node's stream carries a number (seq),
 *     taken from houston:nodeseq:<node> in the same script as the XADD; the
 *     node expects each entry's seq to follow the last one's, and compares
 *     the counter with what it read after a reconnect and when idle;
 *   - consumers read the event stream through a script that first compares
 *     the stream's max-deleted-entry-id with the group's last-delivered-id
 *     (entries trimmed before the group read them) and, on a gap, appends a
 *     "gap" command to every node's stream in the same step, so it is ahead
 *     of any later delivery; a consumer group Redis lost is a gap as well.
 * A node hands a gap to its handler (HS_NODE_GAP) before the next command.
 *
 * Commands to a node go through its stream, in order: a SUBSCRIBE is before
 * the DELIVERs of messages published after it was acknowledged. The
 * subscribe adds the node to the topic's set in the same script that
 * appends it, so the consumer routes the next message there.
 *
 * Each use has its own connection (a "link"): commands, the blocking event
 * read, the blocking node read, the pub/sub subscription. A link that drops
 * is reopened after a backoff (100 ms doubling to 2 s, with jitter); while
 * the command link is down the bus is not ready and operations fail with
 * HS_EUNAVAIL. Events whose append was not confirmed stay in an outbox and
 * are appended again when the link is back (hence redelivers).
 *
 * Names: hs_redis__<verb> are shared between these files only (libuv's
 * uv__ convention); everything else is static in its file. */
#ifndef HS_BUS_REDIS_INTERNAL_H
#define HS_BUS_REDIS_INTERNAL_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus/bus.h"

#define GROUP                "houston:consumers"
#define FORWARDER_CHANNEL    "forwarder-channel"
#define PARTITIONS_KEY       "houston:partitions"
#define CONSUMERS_KEY        "houston:{consumers}:set"
#define CONSUMER_ALIVE       "houston:{consumers}:alive:" /* + the consumer's name */
#define PARTITION_MAXLEN_MIN 100 /* MAXLEN ~ of one partition's stream, at least */
#define HEARTBEAT_MS         5000
/* Events of one partition handed to the consumer and not yet acknowledged:
 * past this the partition is not read until some are, so a burst on one
 * topic does not queue thousands of hand-offs on the command link ahead of
 * the other partitions' events. */
#define PARTITION_IN_FLIGHT_MAX 256
#define CONNS_KEY               "houston:conns"
#define NODES_KEY               "houston:nodes"
#define EVENTS_MAXLEN           100000
#define NODE_MAXLEN             10000
#define READ_COUNT              "64"
#define READ_COUNT_N            64
#define BLOCK_MS                "2000"
#define CLAIM_IDLE_MS           30000
#define BACKOFF_MIN_MS          100
#define BACKOFF_MAX_MS          2000
#define REGROUP_DELAY_MS        3000 /* after Redis lost the group: let nodes re-register */
#define RETRY_READ_MS           1000 /* after an error reply to a blocking read */
#define CONNECT_TIMEOUT_MS      1000
#define OUTBOX_MAX              100000
#define KEY_MAX                 512

enum { LINK_CMD, LINK_EVENTS, LINK_NODE, LINK_PUBSUB, LINK_COUNT };

/* The Lua scripts (redis_scripts.c has the table; each source is in the
 * file of its mechanism). */
typedef enum hs_redis_script {
    SCRIPT_EVENTS_READ,
    SCRIPT_LEASE,
    SCRIPT_LEASE_RELEASE,
    SCRIPT_ACK,
    SCRIPT_CLAIM,
    SCRIPT_TIDY,
    SCRIPT_PARTITIONS,
    SCRIPT_FORGET,
    SCRIPT_APPEND,
    SCRIPT_SUBSCRIBE,
    SCRIPT_SUBSCRIBE_DONE,
    SCRIPT_NODE_START,
    SCRIPT_NODE_CHECK,
    SCRIPT_RESYNC,
    SCRIPT_REMOVE_TOPIC,
    SCRIPT_CLEANUP,
    SCRIPT_COUNT
} hs_redis_script_t;
extern const char *const hs_redis__link_names[LINK_COUNT];

typedef struct redis_bus redis_bus_t;

/* One partition of the event log, as this process sees it (a consumer; a
 * publisher only uses the keys). */
typedef struct partition {
    redis_bus_t *bus;
    unsigned index;
    char stream[32]; /* houston:{p<p>}:events */
    char lease[32];  /* houston:{p<p>}:lease */
    char fence_key[32];
    /* While held: "<consumer>:<token>", what the fenced scripts compare
     * with the lease, and the token. */
    char holder[96];
    uint64_t fence;
    bool held;
    bool taking_over;  /* handing on every pending entry before new ones */
    bool releasing;    /* handing back: no reads; released once in_flight is 0 */
    bool release_sent; /* the release script is on its way: not renewed any more */
    bool idle;         /* read up to last: wait for more before reading again */
    bool claiming;     /* a claim script is on its way */
    bool group_gap;    /* the group was recreated: the next read tells the nodes */
    size_t in_flight;  /* events handed to the consumer, not yet acked or released */
    /* The last release (a hand-off that failed), in loop ms, 0: none left to
     * claim back; and when the claim pass that takes them back began. */
    uint64_t last_release_ms, claim_pass_ms;
    char last[64]; /* the stream's last id when the group had read all */
    char claim_cursor[64];
} partition_t;

/* An event handed to the consumer: what its ack or release needs. */
typedef struct event_token {
    unsigned partition;
    uint64_t fence;
    char id[64];
} event_token_t;

typedef struct link {
    redis_bus_t *bus;
    int role;
    redisAsyncContext *ac; /* NULL while down */
    bool wanted;           /* in use: reopened when lost */
    bool up;               /* connected */
    bool was_up;           /* the next connect is a reconnect */
    bool reported;         /* this outage was logged */
    uint64_t backoff_ms;
    uv_timer_t timer; /* reconnect, or a delayed read */
} link_t;

/* An event on its way to the stream: kept until Redis confirms it. */
typedef struct outbox_entry {
    struct outbox_entry *next;
    redis_bus_t *bus;
    hs_bus_done_cb cb;
    void *data;
    char *topic, *id, *json;
    size_t json_len;
    unsigned partition;
    char *prev; /* NULL: unknown (the field is left out) */
} outbox_entry_t;

struct redis_bus {
    hs_bus_t base;
    char host[256];
    int port;
    int db;
    uint64_t claim_idle_ms;
    char node_max[24];   /* MAXLEN ~ of node streams, as text */
    char events_max[24]; /* MAXLEN ~ of one partition's stream, as text */
    unsigned partitions; /* N */
    partition_t *parts;  /* N of them */
    bool partitions_checked;
    void (*mismatch_cb)(const char *why, void *data);
    void *mismatch_data;
    link_t links[LINK_COUNT];
    char script_sha[SCRIPT_COUNT][41]; /* SHA1 of each script, hex */
    int open_contexts;
    int open_handles; /* timers still to be closed */
    /* consumer (redis_events.c) */
    hs_bus_event_handler consumer;
    void *consumer_data;
    char consumer_name[64];
    bool group_lost;      /* on (re)connect: a missing group means Redis lost it */
    bool groups_ready;    /* every partition's group exists: reads may start */
    bool read_busy;       /* a read (or wait) is on the event link */
    partition_t *reading; /* the partition that read is of (NULL: a wait) */
    unsigned groups_pending, groups_recreated; /* group creation at link up */
    unsigned read_next;                        /* round robin over the held partitions */
    unsigned held; /* partitions held (not counting ones being released) */
    uint64_t consumer_beat_ms;
    uv_timer_t claim_timer; /* the consumer's heartbeat: registry, leases, claims */
    uint64_t backlog_sum;   /* summed over the held partitions during one beat */
    unsigned live_consumers;
    struct free_check *free_check; /* a beat's look for free partitions (redis_leases.c) */
    /* notifier node (redis_node.c) */
    char *node_name;
    char node_key[KEY_MAX];
    char node_seq_key[KEY_MAX];
    char node_last_id[64];
    long long node_seq; /* seq of the last command read; -1: not known */
    bool node_started;
    hs_bus_cmd_handler node_handler;
    void *node_data;
    void (*reconnect_cb)(void *data);
    void *reconnect_data;
    /* set while reconnect_cb runs: what it re-registers (redis_directory.c) */
    struct resync *resync;
    /* directory and heartbeats (redis_directory.c) */
    uv_timer_t heartbeat;
    uint64_t heartbeat_ms;
    bool heartbeat_on;
    void (*dead_cb)(const char *node, void *data);
    void *dead_data;
    /* publisher (redis_events.c) */
    outbox_entry_t *outbox_head, *outbox_tail;
    size_t outbox_len;
    /* closing */
    uv_timer_t finish; /* never started: its close callback ends a close */
    bool closing;
    bool finishing;
    hs_bus_done_cb close_cb;
    void *close_data;
};

static inline bool hs_redis__cmd_up(const redis_bus_t *bus)
{
    return !bus->closing && bus->links[LINK_CMD].up;
}

/* The command link's context, or NULL while it is down or the bus closes. */
static inline redisAsyncContext *hs_redis__cmd_ac(redis_bus_t *bus)
{
    return hs_redis__cmd_up(bus) ? bus->links[LINK_CMD].ac : NULL;
}

static inline bool hs_redis__reply_ok(const redisReply *r)
{
    return r != NULL && r->type != REDIS_REPLY_ERROR;
}

/* ---- redis.c: replies and done callbacks -------------------------------- */

/* 0, HS_EUNAVAIL (NULL reply: the link went away; or a Redis that cannot
 * answer yet) or HS_EIO. */
int hs_redis__reply_status(const redisReply *r);
/* Field value of a stream entry's [f, v, f, v...] array, or NULL. */
const char *hs_redis__field_str(const redisReply *fields, const char *name, size_t *len);

/* What to tell the caller when the reply comes (one of the three). */
typedef struct pending {
    hs_bus_done_cb done;
    hs_bus_node_cb node;
    hs_bus_nodes_cb nodes;
    void *data;
} pending_t;

pending_t *hs_redis__pending_new(void *data);
/* Reply callback: p->done(status), then frees p. */
void hs_redis__done_reply_cb(redisAsyncContext *ac, void *reply, void *privdata);
/* A command that could not even be sent: p's callback runs later (next loop
 * turn) with HS_EUNAVAIL or HS_ECLOSED, never inline. */
void hs_redis__fail_later(redis_bus_t *bus, pending_t *p);
/* Frees the bus once every context and timer is closed (closing only). */
void hs_redis__maybe_closed(redis_bus_t *bus);

/* ---- redis_link.c -------------------------------------------------------- */

int hs_redis__link_open(link_t *l);
/* Runs cb on the link's timer after ms (a read again after an error). */
void hs_redis__link_later(link_t *l, uv_timer_cb cb, uint64_t ms);
/* The preamble of a reply on a link's read (the one helper for it): NULL
 * when there is nothing to do - the link went away (it reads again when it
 * is back) or the bus closes - or when it was an error reply, which is
 * logged as "bus: <what> failed" and retried with retry_cb on the link's
 * timer after RETRY_READ_MS. Otherwise the reply. */
const redisReply *hs_redis__link_reply(redis_bus_t *bus, int link, void *reply, const char *what,
                                       uv_timer_cb retry_cb);
bool hs_redis__ready(hs_bus_t *b);
void hs_redis__on_reconnect(hs_bus_t *b, void (*cb)(void *data), void *data);

/* ---- redis_scripts.c ----------------------------------------------------- */

extern const char hs_redis__events_read_script[], hs_redis__lease_script[],
    hs_redis__lease_release_script[], hs_redis__append_script[], hs_redis__subscribe_script[],
    hs_redis__subscribe_done_script[], hs_redis__node_start_script[], hs_redis__node_check_script[],
    hs_redis__resync_script[], hs_redis__remove_topic_script[], hs_redis__cleanup_script[];

/* Computes each script's SHA (at open). */
void hs_redis__scripts_init(redis_bus_t *bus);
/* Sends SCRIPT LOAD for the scripts the link calls (on each (re)connect,
 * ahead of anything else on it). */
void hs_redis__scripts_load(link_t *l);
/* EVALSHA of script with nkeys keys, then argc arguments (KEYS first, then
 * ARGV; lens NULL: C strings). The arguments are copied. On NOSCRIPT the
 * script is loaded again and the call sent again on the same link; cb (may
 * be NULL) hears the final reply, NULL if the link went away. Returns
 * REDIS_ERR when it could not be sent (ac NULL or going away): cb never
 * runs then. */
int hs_redis__script(redisAsyncContext *ac, redis_bus_t *bus, hs_redis_script_t script,
                     redisCallbackFn *cb, void *privdata, int nkeys, int argc,
                     const char *const *argv, const size_t *lens);

/* ---- redis_events.c ------------------------------------------------------ */

extern const char hs_redis__ack_script[], hs_redis__claim_script[], hs_redis__tidy_script[],
    hs_redis__partitions_script[], hs_redis__forget_script[];

void hs_redis__publish_event(hs_bus_t *b, const hs_event_t *ev, hs_bus_done_cb cb, void *data);
int hs_redis__consume_events(hs_bus_t *b, hs_bus_event_handler handler, void *data);
void hs_redis__ack(hs_bus_t *b, void *token);
void hs_redis__release(hs_bus_t *b, void *token);
/* The command link is (back) up: appends the outbox; after a reconnect
 * the consumer reads its own pending entries again first. */
void hs_redis__events_cmd_up(redis_bus_t *bus, bool again);
/* The command link is down: the held partitions are not read until they
 * are taken over again (events_cmd_up). */
void hs_redis__events_cmd_lost(redis_bus_t *bus);
/* The event link is (back) up: (re)creates the groups, then reads. */
void hs_redis__events_link_up(redis_bus_t *bus, bool again);
/* A clean stop (bus->closing already set): fails what is left in the
 * outbox. */
void hs_redis__events_close(redis_bus_t *bus);
/* Reads the next held partition, or waits for entries on them (the one
 * read loop on the event link). */
void hs_redis__read_events(redis_bus_t *bus);
/* A partition was just taken (or taken again after a reconnect): its
 * pending entries are claimed and handed on, dead consumers leave its
 * group, then it is read. */
void hs_redis__take_over(redis_bus_t *bus, partition_t *p);
/* The periodic part of a beat for a held partition: entries of this
 * consumer released --claim-idle ago come back; the backlog gauge. */
void hs_redis__partition_beat(redis_bus_t *bus, partition_t *p);

/* ---- redis_leases.c ------------------------------------------------------ */

/* Fills bus->parts (keys, state) for N partitions. */
void hs_redis__partitions_init(redis_bus_t *bus, unsigned count);
/* The command link is up: checks houston:partitions against N. */
void hs_redis__partitions_check(redis_bus_t *bus);
/* Starts the consumer's heartbeat (registry, leases, balance). */
void hs_redis__leases_start(redis_bus_t *bus);
/* One beat now (the command link is back). */
void hs_redis__leases_beat(redis_bus_t *bus);
/* The partition lost its lease (another holds it, or a fenced script said
 * so): reading stops, in-flight acks will be refused. */
void hs_redis__partition_lost(redis_bus_t *bus, partition_t *p, const char *why);
/* An ack or release of one of p's events went out: a partition being
 * handed back is released once none is left. */
void hs_redis__partition_settled(redis_bus_t *bus, partition_t *p);
/* A clean stop: leases given back, this consumer leaves each group where
 * it has nothing pending, and the registry. */
void hs_redis__leases_close(redis_bus_t *bus);

/* ---- redis_node.c -------------------------------------------------------- */

void hs_redis__send_to_node(hs_bus_t *b, const char *node, const hs_node_cmd_t *cmd,
                            hs_bus_done_cb cb, void *data);
int hs_redis__serve_node(hs_bus_t *b, const char *node, hs_bus_cmd_handler handler, void *data);
/* The node link is (back) up: starts, or checks for a gap and reads on. */
void hs_redis__node_link_up(redis_bus_t *bus);
/* The pub/sub link is (back) up: subscribes to the forwarder channel. */
void hs_redis__pubsub_link_up(redis_bus_t *bus);

/* ---- redis_directory.c --------------------------------------------------- */

void hs_redis__register_connection(hs_bus_t *b, const char *node, const char *conn,
                                   hs_bus_done_cb cb, void *data);
void hs_redis__unregister_connection(hs_bus_t *b, const char *node, const char *conn);
void hs_redis__add_topic_node(hs_bus_t *b, const char *topic, const char *node);
void hs_redis__remove_topic_node(hs_bus_t *b, const char *topic, const char *node);
void hs_redis__locate_connection(hs_bus_t *b, const char *conn, hs_bus_node_cb cb, void *data);
void hs_redis__topic_nodes(hs_bus_t *b, const char *topic, hs_bus_nodes_cb cb, void *data);
void hs_redis__watch_nodes(hs_bus_t *b, const char *node, uint64_t interval_ms,
                           void (*dead_cb)(const char *node, void *data), void *data);
/* The command link is (back) up: the node's live directory entries again
 * (the notifier's on_reconnect callback), then its stale ones removed, then
 * a heartbeat at once. */
void hs_redis__directory_cmd_up(redis_bus_t *bus, bool again);
/* A clean stop (bus->closing already set): the node leaves the directory
 * now. */
void hs_redis__directory_close(redis_bus_t *bus);

#endif
