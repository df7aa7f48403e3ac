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
        if (scripts[i].link == l->role)
            load(l->ac, i);
}

/* One EVALSHA on its way: its arguments are kept (in one allocation) so
 * that it can be sent again after NOSCRIPT. */
typedef struct script_call {
    redis_bus_t *bus;
    int script;
    int tries;
    redisCallbackFn *cb;
    void *privdata;
    int argc;
    const char **argv;
    size_t *lens;
} script_call_t;

static void script_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    script_call_t *call = privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
        call->tries < NOSCRIPT_RETRIES && !call->bus->closing) {
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
    if (call->cb)
        call->cb(ac, reply, call->privdata);
    hs_free(call);
}

int hs_redis__script(redisAsyncContext *ac, redis_bus_t *bus, hs_redis_script_t script,
                     redisCallbackFn *cb, void *privdata, int nkeys, int argc,
                     const char *const *argv, const size_t *lens)
{
    if (ac == NULL)
        return REDIS_ERR;
    char numkeys[16];
    snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
    const char *head[3] = {"EVALSHA", bus->script_sha[script], numkeys};
    int total = argc + 3;
    size_t bytes = 0;
    for (int i = 0; i < total; i++)
        bytes += (i < 3 ? strlen(head[i]) : lens ? lens[i - 3] : strlen(argv[i - 3])) + 1;
    script_call_t *call =
        hs_malloc(sizeof(*call) + (size_t)total * (sizeof(char *) + sizeof(size_t)) + bytes);
    *call = (script_call_t){
        .bus = bus, .script = script, .cb = cb, .privdata = privdata, .argc = total};
    call->argv = (const char **)(call + 1);
    call->lens = (size_t *)(call->argv + total);
    char *text = (char *)(call->lens + total);
    for (int i = 0; i < total; i++) {
        const char *s = i < 3 ? head[i] : argv[i - 3];
        size_t len = i < 3 ? strlen(s) : lens ? lens[i - 3] : strlen(s);
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
