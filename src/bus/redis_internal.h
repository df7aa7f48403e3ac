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
 *   redis_outbox.c     the publisher's events: appended to the topic's
 *                      partition, kept in the outbox until Redis confirms
 *   redis_events.c     events, the consumer side: the groups, the event
 *                      read script, XAUTOCLAIM, fenced acks
 *   redis_leases.c     partitions: the agreed count, consumers' registry and
 *                      heartbeat, leases with fencing tokens, balance,
 *                      take-over and clean hand-over
 *   redis_node.c       node streams: commands appended with seq, a node's
 *                      read/check/start, gap detection, forwarder channel
 *   redis_directory.c  directory (conns, topic sets, pend), its resync after
 *                      a reconnect, heartbeats and cleanup of dead nodes
 *   redis_cluster.c    Redis Cluster: seeds, the slot map (CLUSTER SLOTS),
 *                      a key's slot, one command link per master, MOVED/ASK
 * docs/internals/bus.md is the design note.
 *
 * Keys, streams and channels (docs/scaling.md). Every script touches only
 * the keys it is given in KEYS, all in one hash slot, so the same keys work
 * on one Redis and on a Redis Cluster (redis_cluster.c): the keys of a
 * partition share the hash tag {p<p>}, those of a node {n:<node>}, those of
 * a topic {t:<topic>}.
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
 *   houston:{consumers}:set   set of the consumers that registered
 *   houston:{consumers}:alive:<name>  a consumer's heartbeat (expires
 *                             after 3 intervals): the live ones share the
 *                             partitions (one slot, for the one script that
 *                             removes a dead one from the set)
 *   houston:events            the stream of versions before partitions: no
 *                             longer written nor read (docs/scaling.md,
 *                             "Upgrading")
 *   houston:{n:<node>}:stream stream of commands for one notifier node (XREAD)
 *   houston:{n:<node>}:seq    number of the last command appended to it
 *   houston:{n:<node>}:conns  connections of a node   } so a dead node's
 *   houston:{n:<node>}:topics topics of a node        } entries can be found
 *   houston:{n:<node>}:alive  a node's heartbeat (expires after 3 intervals)
 *   houston:{n:<node>}:cleanup lock: one survivor cleans up a dead node
 *   houston:{t:<topic>}:nodes set of the nodes that hold subscribers of topic
 *   houston:{t:<topic>}:pend:<node>  subscribes on their way to node for the
 *                             topic: the node keeps the topic routed while one
 *                             is pending (in the topic's slot, so that "is one
 *                             pending? then leave the set alone" is one step)
 *   houston:conns             hash: connection id -> node
 *   houston:nodes             set of the notifier nodes
 *   forwarder-channel         pub/sub channel of the prototype: every node
 *                             hears {"connectionID":…,"payload":…} (PUBLISH
 *                             reaches every node of a cluster: any one will do)
 * Streams are capped with MAXLEN ~ (--node-stream-max, --event-stream-max)
 * so Redis memory stays bounded.
 *
 * A capped stream can drop entries its reader has not read yet (a stalled
 * notifier, consumers down), and Redis can lose them all (a restart without
 * persistence). Neither may go unnoticed (docs/recovery.md, "Gaps"):
 *   - every command appended to a node's stream carries a number (seq),
 *     taken from houston:{n:<node>}:seq in the same script as the XADD; the
 *     node expects each entry's seq to follow the last one's, and compares
 *     the counter with what it read after a reconnect and when idle;
 *   - consumers read the event stream through a script that first compares
 *     the stream's max-deleted-entry-id with the group's last-delivered-id
 *     (entries trimmed before the group read them) and, on a gap, the
 *     consumer appends a "gap" command to every node's stream before it
 *     hands on anything read after the gap (redis_events.c), so the gap is
 *     ahead of any later delivery; a consumer group Redis lost is a gap too.
 * A node hands a gap to its handler (HS_NODE_GAP) before the next command.
 *
 * Commands to a node go through its stream, in order: a SUBSCRIBE is before
 * the DELIVERs of messages published after it was acknowledged. A subscribe
 * appends the command first, then adds the node to the topic's set, then
 * acknowledges (redis_node.c; the argument is in docs/internals/bus.md).
 *
 * Each use has its own connection (a "link"): commands, the blocking event
 * read, the blocking node read, the pub/sub subscription. On a Redis Cluster
 * commands go over one link per master ("shards"), each to the master of
 * its key's slot, and each blocking link to the master of its key's slot
 * (redis_cluster.c); the command link then only asks for the slot map. A
 * link that drops
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
#define CLUSTER_SLOTS           16384
#define SHARDS_MAX              32 /* masters of a cluster */
#define KNOWN_MAX               64 /* addresses tried for the slot map: seeds, then nodes */
#define NO_SHARD                0xFFFF
#define WAIT_MS                 "1000" /* a durable write waits this long for a replica */
#define CLUSTER_POLL_MS         50  /* idle partitions read again, on a cluster (no XREAD BLOCK) */
#define HUNT_MS                 100 /* free partitions looked for again while short of a share */

/* The keys (redis_internal.h's map above); snprintf into a KEY_MAX buffer. */
#define NODE_KEY(buf, node, what)   snprintf((buf), sizeof(buf), "houston:{n:%s}:" what, (node))
#define TOPIC_KEY(buf, topic, what) snprintf((buf), sizeof(buf), "houston:{t:%s}:" what, (topic))

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
    SCRIPT_PEND,
    SCRIPT_CONNS_DROP,
    SCRIPT_NODE_START,
    SCRIPT_NODE_CHECK,
    SCRIPT_RESYNC,
    SCRIPT_REMOVE_TOPIC,
    SCRIPT_CLEANUP,
    SCRIPT_COUNT
} hs_redis_script_t;
extern const char *const hs_redis__link_names[LINK_COUNT];

typedef struct redis_bus redis_bus_t;

typedef struct hs_redis_addr {
    char host[256];
    int port;
} hs_redis_addr_t;

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
    bool take_sent;    /* a take of its lease is on its way (counts towards the share) */
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
    bool shard;            /* a cluster's command link to one master */
    int replicas;          /* shard: replicas of its master (durable writes WAIT) */
    bool timer_on;         /* timer initialised (shards: when first used) */
    hs_redis_addr_t addr;  /* where it connects (or last connected) */
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
    char *prev;           /* NULL: unknown (the field is left out) */
    hs_event_kind_t kind; /* the field "kind" ("deleted") unless HS_EVENT_CREATED */
} outbox_entry_t;

struct redis_bus {
    hs_bus_t base;
    int db;
    /* Where Redis is (redis_cluster.c): the seeds of the URL, then the
     * nodes the slot map named; the command link tries them in turn. */
    hs_redis_addr_t known[KNOWN_MAX];
    int known_count, seed_count, known_next;
    bool mode_known; /* the first answer told one Redis from a cluster */
    bool cluster;
    bool cmd_ready;     /* commands can go out (one Redis: the command link) */
    bool cmd_was_ready; /* the next ready is a reconnect */
    /* cluster: the master of each slot (an index into shards) */
    uint16_t slot_shard[CLUSTER_SLOTS];
    link_t shards[SHARDS_MAX];
    int shard_count;
    uv_timer_t refresh_timer; /* asks the slot map again, after a backoff */
    bool refresh_wanted, refresh_sent;
    uint64_t refresh_backoff_ms;
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
    bool groups_deferred; /* a cluster: created once every master is reachable */
    bool read_busy;       /* a read (or wait) is on the event link */
    partition_t *reading; /* the partition that read is of (NULL: a wait) */
    unsigned groups_pending, groups_recreated; /* group creation at link up */
    unsigned read_next;                        /* round robin over the held partitions */
    unsigned held; /* partitions held (not counting ones being released) */
    uint64_t consumer_beat_ms;
    uv_timer_t claim_timer; /* the consumer's heartbeat: registry, leases, claims */
    uint64_t backlog_sum;   /* summed over the held partitions during one beat */
    unsigned live_consumers;
    unsigned share;                /* partitions this consumer aims at: ceil(N / live) */
    struct free_check *free_check; /* a beat's look for free partitions (redis_leases.c) */
    /* Short of its share after the live count changed, a consumer looks for
     * free partitions every HUNT_MS until hunt_until_ms (redis_leases.c). */
    uv_timer_t hunt_timer;
    uint64_t hunt_until_ms;
    /* notifier node (redis_node.c) */
    char *node_name;
    char node_key[KEY_MAX];
    char node_seq_key[KEY_MAX];
    char node_last_id[64];
    long long node_seq; /* seq of the last command read; -1: not known */
    bool node_started;
    struct barrier *barriers, *barriers_tail; /* hs_redis__node_barrier's, oldest first */
    uv_timer_t barrier_timer;                 /* the next barrier's deadline */
    hs_bus_cmd_handler node_handler;
    void *node_data;
    void (*reconnect_cb)(void *data);
    void *reconnect_data;
    /* set while reconnect_cb runs: what it re-registers (redis_directory.c) */
    struct resync *resync;
    /* Resyncs whose answer (the stale topics) is still to come, and the
     * topics this node took up meanwhile: those are not stale. */
    int resyncs_in_flight;
    struct name_list *resync_recent;
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
    return !bus->closing && bus->cmd_ready;
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
/* The commands can go out (again): the outbox, the directory, the lease. */
void hs_redis__cmd_link_up(redis_bus_t *bus, bool again);
void hs_redis__on_reconnect(hs_bus_t *b, void (*cb)(void *data), void *data);

/* ---- redis_cluster.c ----------------------------------------------------- */

/* The hash slot of a key (CRC16 of the key, or of its hash tag: the text
 * between the first '{' and the next '}' when not empty), 0..16383. */
unsigned hs_redis_key_slot(const char *key, size_t len);
/* redis://host[:port][,host[:port]...][/db] into addrs (at most max);
 * returns how many, or -1 (a bad URL). */
int hs_redis_parse_seeds(const char *url, hs_redis_addr_t *addrs, int max, int *db);
/* "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>"; an empty host
 * is the one asked (Redis 7 without a known endpoint). Returns 0 for a
 * redirect, -1 for anything else. */
int hs_redis_parse_redirect(const char *err, const char *asked_host, bool *ask, int *slot,
                            hs_redis_addr_t *to);
/* Builds slot -> master index, the masters' addresses and how many replicas
 * each has from a CLUSTER SLOTS reply (at most max masters; every node,
 * replicas too, goes to known, at most
 * known_max). Returns the number of masters, or -1 if the reply is not a
 * slot map or does not cover every slot. */
int hs_redis_parse_slots(const redisReply *r, const char *asked_host, uint16_t *slot_shard,
                         hs_redis_addr_t *masters, int *replicas, int max, hs_redis_addr_t *known,
                         int *known_count, int known_max);

/* Where a link connects: the seed/known address for the command link, the
 * master of its key's slot for the others; false while the map has no owner
 * for that slot. */
bool hs_redis__link_addr(link_t *l, hs_redis_addr_t *out);
/* The command link (back) up, before anything else: asks the slot map. One
 * Redis answers with an error: then it is the command link as before. */
void hs_redis__cluster_probe(link_t *l, bool again);
/* A link was lost or answered MOVED: ask the slot map again (soon, once). */
void hs_redis__cluster_refresh(redis_bus_t *bus);
/* A shard connected or was lost: ready is when every master's link is up. */
void hs_redis__cluster_shard_changed(redis_bus_t *bus);
/* The context for a command on key: the command link (one Redis) or the
 * link to the master of key's slot; NULL while not ready. */
redisAsyncContext *hs_redis__cmd_ac_key(redis_bus_t *bus, const char *key);
/* Handles a MOVED/ASK/CLUSTERDOWN reply to a call on a shard: returns the
 * context to send the call to again (after ASKING when *asking), or NULL
 * when the reply is the answer (or there is nowhere to send it). */
redisAsyncContext *hs_redis__cluster_redirect(redis_bus_t *bus, redisAsyncContext *ac,
                                              const redisReply *r, bool *asking);

/* A clean stop: the shards' links (what is queued is sent first) and
 * timers, and the refresh timer. */
void hs_redis__cluster_close(redis_bus_t *bus);

/* ---- redis_scripts.c ----------------------------------------------------- */

extern const char hs_redis__events_read_script[], hs_redis__lease_script[],
    hs_redis__lease_release_script[], hs_redis__append_script[], hs_redis__subscribe_script[],
    hs_redis__subscribe_done_script[], hs_redis__node_start_script[], hs_redis__node_check_script[],
    hs_redis__resync_script[], hs_redis__remove_topic_script[], hs_redis__cleanup_script[],
    hs_redis__pend_script[], hs_redis__conns_drop_script[];

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
/* The same on the command link of KEYS[1]'s slot (argv[0]); a MOVED or ASK
 * answer sends it again to the owner (a few times at most). */
int hs_redis__cmd_script(redis_bus_t *bus, hs_redis_script_t script, redisCallbackFn *cb,
                         void *privdata, int nkeys, int argc, const char *const *argv,
                         const size_t *lens);
/* A write that must survive a failover (an event appended, a command to a
 * node): on a cluster master with replicas, cb hears the reply only after
 * WAIT 1 (a replica has it, or WAIT_MS passed: a replica that is down
 * cannot be waited for). cb must only look at a plain (non-array) reply. */
int hs_redis__cmd_script_durable(redis_bus_t *bus, hs_redis_script_t script, redisCallbackFn *cb,
                                 void *privdata, int nkeys, int argc, const char *const *argv,
                                 const size_t *lens);
int hs_redis__cmd_durable(redis_bus_t *bus, redisCallbackFn *cb, void *privdata, int argc,
                          const char *const *argv, const size_t *lens);
/* A plain command (argv[0] the command, argv[1] its key; XINFO's is
 * argv[2], XGROUP's too) on the command
 * link of the key's slot, following MOVED/ASK like the above. REDIS_ERR
 * when it could not be sent (not ready): cb never runs then. */
int hs_redis__cmd(redis_bus_t *bus, redisCallbackFn *cb, void *privdata, int argc,
                  const char *const *argv, const size_t *lens);
/* The same with C strings, args ending with NULL; hs_redis__cmdl lists
 * them in the call: hs_redis__cmdl(bus, cb, data, "SADD", key, member). */
int hs_redis__cmda(redis_bus_t *bus, redisCallbackFn *cb, void *privdata, const char *const *args);
#define hs_redis__cmdl(bus, cb, privdata, ...)                                                     \
    hs_redis__cmda((bus), (cb), (privdata), (const char *const[]){__VA_ARGS__, NULL})

/* ---- redis_outbox.c ------------------------------------------------------ */

void hs_redis__publish_event(hs_bus_t *b, const hs_event_t *ev, hs_bus_done_cb cb, void *data);
/* Appends again every event the outbox kept (events_cmd_up). */
void hs_redis__outbox_flush(redis_bus_t *bus);
/* Fails what is left in the outbox with HS_ECLOSED (events_close). */
void hs_redis__outbox_close(redis_bus_t *bus);

/* ---- redis_events.c ------------------------------------------------------ */

extern const char hs_redis__ack_script[], hs_redis__claim_script[], hs_redis__tidy_script[],
    hs_redis__partitions_script[], hs_redis__forget_script[];

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
/* A clean stop (just before bus->closing is set): fails what is left in
 * the outbox. */
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
void hs_redis__node_barrier(hs_bus_t *b, hs_bus_done_cb cb, void *data);
/* The barriers the node has read past run (status 0), those past their
 * time fail; status != 0: every one fails with it (the node link lost, the
 * bus closing). */
void hs_redis__node_barriers_run(redis_bus_t *bus, int status);
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
/* A topic this node took up while a resync's answer is on its way: not
 * stale, whatever the answer says. */
void hs_redis__resync_note_topic(redis_bus_t *bus, const char *topic);
/* A clean stop (just before bus->closing is set): the node leaves the
 * directory now. */
void hs_redis__directory_close(redis_bus_t *bus);

/* ---- redis_status.c ------------------------------------------------------ */

/* GET /api/v1/nodes's read of the directory (bus.h, deployment). */
void hs_redis__deployment(hs_bus_t *b, hs_bus_deployment_cb cb, void *data);

#endif
