/* redis_scripts.c - the Redis bus's Lua scripts: one table (names, sources,
 * the link that calls each), loaded with SCRIPT LOAD on every (re)connect of
 * that link, called by SHA (EVALSHA). A Redis that forgot its scripts
 * (SCRIPT FLUSH, a failover to a replica that never loaded them) answers
 * NOSCRIPT: the call loads the script again and sends the same EVALSHA once
 * more, on the same link, so the operation is not lost. Retried calls go
 * out in the order their NOSCRIPT replies came, which is the order they
 * were sent; but a call issued after the first NOSCRIPT reply and before
 * the last can run ahead of a retried one. A restarted Redis does not do
 * this (the link reconnects, and loads every script before any call); an
 * operator flushing scripts under a live bus can (docs/internals/bus.md).
 *
 * The sources stay beside the mechanism that uses them (each with its
 * comment, and the reason when a key is derived inside the script rather
 * than named in KEYS); this file only knows them by name. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/redis_internal.h"
#include "core/alloc.h"
#include "core/log.h"

/* A retried EVALSHA can meet NOSCRIPT again only if the scripts were
 * flushed once more in between; past a few tries the error goes to the
 * caller like any other. */
#define NOSCRIPT_RETRIES 3

static const struct {
    const char *name;
    const char *source;
    int link; /* the link that calls it, so loads it on (re)connect */
} scripts[SCRIPT_COUNT] = {
    [SCRIPT_EVENTS_READ] = {"events_read", hs_redis__events_read_script, LINK_EVENTS},
    [SCRIPT_LEASE] = {"lease", hs_redis__lease_script, LINK_CMD},
    [SCRIPT_LEASE_RELEASE] = {"lease_release", hs_redis__lease_release_script, LINK_CMD},
    [SCRIPT_ACK] = {"ack", hs_redis__ack_script, LINK_CMD},
    [SCRIPT_CLAIM] = {"claim", hs_redis__claim_script, LINK_CMD},
    [SCRIPT_TIDY] = {"tidy", hs_redis__tidy_script, LINK_CMD},
    [SCRIPT_PARTITIONS] = {"partitions", hs_redis__partitions_script, LINK_CMD},
    [SCRIPT_FORGET] = {"forget", hs_redis__forget_script, LINK_CMD},
    [SCRIPT_APPEND] = {"append", hs_redis__append_script, LINK_CMD},
    [SCRIPT_SUBSCRIBE] = {"subscribe", hs_redis__subscribe_script, LINK_CMD},
    [SCRIPT_SUBSCRIBE_DONE] = {"subscribe_done", hs_redis__subscribe_done_script, LINK_CMD},
    [SCRIPT_PEND] = {"pend", hs_redis__pend_script, LINK_CMD},
    [SCRIPT_CONNS_DROP] = {"conns_drop", hs_redis__conns_drop_script, LINK_CMD},
    [SCRIPT_NODE_START] = {"node_start", hs_redis__node_start_script, LINK_NODE},
    [SCRIPT_NODE_CHECK] = {"node_check", hs_redis__node_check_script, LINK_NODE},
    [SCRIPT_RESYNC] = {"resync", hs_redis__resync_script, LINK_CMD},
    [SCRIPT_REMOVE_TOPIC] = {"remove_topic", hs_redis__remove_topic_script, LINK_CMD},
    [SCRIPT_CLEANUP] = {"cleanup", hs_redis__cleanup_script, LINK_CMD},
};

void hs_redis__scripts_init(redis_bus_t *bus)
{
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        EVP_Digest(scripts[i].source, strlen(scripts[i].source), md, &md_len, EVP_sha1(), NULL);
        for (unsigned int j = 0; j < md_len && j < 20; j++)
            snprintf(bus->script_sha[i] + 2 * j, 3, "%02x", md[j]);
    }
}

static int load(redisAsyncContext *ac, int script)
{
    const char *argv[] = {"SCRIPT", "LOAD", scripts[script].source};
    size_t lens[] = {6, 4, strlen(scripts[script].source)};
    return redisAsyncCommandArgv(ac, NULL, NULL, 3, argv, lens);
}

void hs_redis__scripts_load(link_t *l)
{
    for (int i = 0; i < SCRIPT_COUNT; i++)
        if (scripts[i].link == l->role || (l->shard && scripts[i].link == LINK_EVENTS))
            load(l->ac, i); /* a cluster's partition reads go over the shards */
}

/* One call on its way - an EVALSHA, or a plain command (script -1) - its
 * arguments kept (in one allocation) so that it can be sent again after
 * NOSCRIPT, or to another master after MOVED / ASK (a cluster). */
typedef struct script_call {
    redis_bus_t *bus;
    int script;
    int tries;
    int redirects;
    bool durable;
    redisReply *held; /* durable: the reply, kept until WAIT answered */
    redisCallbackFn *cb;
    void *privdata;
    int argc;
    const char **argv;
    size_t *lens;
} script_call_t;

#define REDIRECTS_MAX 5

/* A copy of a plain reply (status, string, integer, error, nil), so that it
 * outlives its callback; freed with freeReplyObject. */
static redisReply *reply_copy(const redisReply *r)
{
    redisReply *c = hs_calloc(1, sizeof(*c));
    c->type = r->type;
    c->integer = r->integer;
    if (r->str) {
        c->str = malloc(r->len + 1); /* hiredis 0.14 frees it with free() */
        if (c->str == NULL)
            abort();
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
    }
    return c;
}

/* WAIT's answer (how many replicas have it) does not matter - a replica
 * that is down cannot be waited for - but no answer does: the master went
 * away, maybe before its replica had the write, so it is unconfirmed
 * (appended again, or left pending, as when the link is lost). */
static void waited_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    script_call_t *call = privdata;
    if (call->cb)
        call->cb(ac, reply ? call->held : NULL, call->privdata);
    freeReplyObject(call->held);
    hs_free(call);
}

static void script_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    script_call_t *call = privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR && call->script >= 0 &&
        strncmp(r->str, "NOSCRIPT", 8) == 0 && call->tries < NOSCRIPT_RETRIES &&
        !call->bus->closing) {
        call->tries++;
        hs_log_info("bus: Redis does not know the %s script (restarted or flushed?); loading "
                    "it again",
                    scripts[call->script].name);
        if (load(ac, call->script) == REDIS_OK &&
            redisAsyncCommandArgv(ac, script_reply_cb, call, call->argc, call->argv, call->lens) ==
                REDIS_OK)
            return;
        reply = NULL; /* could not send it again: as if the link went away */
    }
    link_t *l = ac->data;
    if (r && r->type == REDIS_REPLY_ERROR && l && l->shard &&
        (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0)) {
        /* The key's slot is served elsewhere (resharding; a map not yet
         * asked again after a failover): the same call, to the owner. */
        bool asking;
        redisAsyncContext *to = hs_redis__cluster_redirect(call->bus, ac, r, &asking);
        if (to && call->redirects < REDIRECTS_MAX) {
            call->redirects++;
            if (call->script >= 0 && to != ac)
                load(to, call->script); /* a master that may not know it */
            if ((!asking || redisAsyncCommand(to, NULL, NULL, "ASKING") == REDIS_OK) &&
                redisAsyncCommandArgv(to, script_reply_cb, call, call->argc, call->argv,
                                      call->lens) == REDIS_OK)
                return;
        }
        reply = NULL; /* nowhere to send it yet: unavailable, as a lost link */
    } else if (r && r->type == REDIS_REPLY_ERROR && l && l->shard) {
        bool asking;
        hs_redis__cluster_redirect(call->bus, ac, r, &asking); /* CLUSTERDOWN: the map again */
    }
    r = reply;
    if (call->durable && r && r->type != REDIS_REPLY_ERROR && r->type != REDIS_REPLY_ARRAY && l &&
        l->shard && l->replicas > 0 && !call->bus->closing) {
        /* Acknowledged by a master, but a failover to a replica that has not
         * got it yet would lose it: the caller hears it once a replica has
         * it (or WAIT_MS passed). */
        call->held = reply_copy(r);
        if (redisAsyncCommand(ac, waited_cb, call, "WAIT 1 %s", WAIT_MS) == REDIS_OK)
            return;
        freeReplyObject(call->held);
    }
    if (call->cb)
        call->cb(ac, reply, call->privdata);
    hs_free(call);
}

static int send_call(redisAsyncContext *ac, redis_bus_t *bus, int script, bool durable,
                     redisCallbackFn *cb, void *privdata, int nhead, const char *const *head,
                     int argc, const char *const *argv, const size_t *lens)
{
    if (ac == NULL)
        return REDIS_ERR;
    int total = argc + nhead;
    size_t bytes = 0;
    for (int i = 0; i < total; i++)
        bytes += (i < nhead ? strlen(head[i])
                  : lens    ? lens[i - nhead]
                            : strlen(argv[i - nhead])) +
                 1;
    script_call_t *call =
        hs_malloc(sizeof(*call) + (size_t)total * (sizeof(char *) + sizeof(size_t)) + bytes);
    *call = (script_call_t){.bus = bus,
                            .script = script,
                            .durable = durable,
                            .cb = cb,
                            .privdata = privdata,
                            .argc = total};
    call->argv = (const char **)(call + 1);
    call->lens = (size_t *)(call->argv + total);
    char *text = (char *)(call->lens + total);
    for (int i = 0; i < total; i++) {
        const char *s = i < nhead ? head[i] : argv[i - nhead];
        size_t len = i < nhead ? strlen(s) : lens ? lens[i - nhead] : strlen(s);
        memcpy(text, s, len);
        text[len] = '\0';
        call->argv[i] = text;
        call->lens[i] = len;
        text += len + 1;
    }
    if (redisAsyncCommandArgv(ac, script_reply_cb, call, total, call->argv, call->lens) !=
        REDIS_OK) {
        hs_free(call);
        return REDIS_ERR;
    }
    return REDIS_OK;
}

static int script_call(redisAsyncContext *ac, redis_bus_t *bus, hs_redis_script_t script,
                       bool durable, redisCallbackFn *cb, void *privdata, int nkeys, int argc,
                       const char *const *argv, const size_t *lens)
{
    char numkeys[16];
    snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
    const char *head[3] = {"EVALSHA", bus->script_sha[script], numkeys};
    return send_call(ac, bus, (int)script, durable, cb, privdata, 3, head, argc, argv, lens);
}

int hs_redis__script(redisAsyncContext *ac, redis_bus_t *bus, hs_redis_script_t script,
                     redisCallbackFn *cb, void *privdata, int nkeys, int argc,
                     const char *const *argv, const size_t *lens)
{
    return script_call(ac, bus, script, false, cb, privdata, nkeys, argc, argv, lens);
}

int hs_redis__cmd_script(redis_bus_t *bus, hs_redis_script_t script, redisCallbackFn *cb,
                         void *privdata, int nkeys, int argc, const char *const *argv,
                         const size_t *lens)
{
    redisAsyncContext *ac = hs_redis__cmd_ac_key(bus, nkeys > 0 ? argv[0] : "");
    return script_call(ac, bus, script, false, cb, privdata, nkeys, argc, argv, lens);
}

int hs_redis__cmd_script_durable(redis_bus_t *bus, hs_redis_script_t script, redisCallbackFn *cb,
                                 void *privdata, int nkeys, int argc, const char *const *argv,
                                 const size_t *lens)
{
    redisAsyncContext *ac = hs_redis__cmd_ac_key(bus, nkeys > 0 ? argv[0] : "");
    return script_call(ac, bus, script, true, cb, privdata, nkeys, argc, argv, lens);
}

/* The key a plain command is about: its first argument, but the third of a
 * container command (XINFO GROUPS <key>, XGROUP CREATE <key> ...). */
static const char *command_key(int argc, const char *const *argv)
{
    if (argc > 2 && (strcmp(argv[0], "XINFO") == 0 || strcmp(argv[0], "XGROUP") == 0))
        return argv[2];
    return argc > 1 ? argv[1] : "";
}

int hs_redis__cmd(redis_bus_t *bus, redisCallbackFn *cb, void *privdata, int argc,
                  const char *const *argv, const size_t *lens)
{
    redisAsyncContext *ac = hs_redis__cmd_ac_key(bus, command_key(argc, argv));
    return send_call(ac, bus, -1, false, cb, privdata, 0, NULL, argc, argv, lens);
}

int hs_redis__cmd_durable(redis_bus_t *bus, redisCallbackFn *cb, void *privdata, int argc,
                          const char *const *argv, const size_t *lens)
{
    redisAsyncContext *ac = hs_redis__cmd_ac_key(bus, command_key(argc, argv));
    return send_call(ac, bus, -1, true, cb, privdata, 0, NULL, argc, argv, lens);
}

int hs_redis__cmda(redis_bus_t *bus, redisCallbackFn *cb, void *privdata, const char *const *args)
{
    int argc = 0;
    while (args[argc])
        argc++;
    return hs_redis__cmd(bus, cb, privdata, argc, args, NULL);
}
