/* publisher_batch.c - POST /api/v1/messages/batch: several messages in one
 * request, stored in one transaction (all or none: hs_store_put_messages),
 * then each announced on the bus exactly as a single publish announces its
 * one, in the batch's order (docs/api.md, "Batch publish"). */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/metrics.h"
#include "core/ulid.h"
#include "roles/idempotency.h"
#include "roles/publisher_internal.h"
#include "roles/render.h"

typedef struct batch_call {
    hs_publisher_t *publisher;
    hs_http_request_t *req;
    uint64_t started_ns;
    char key[HS_IDEMPOTENCY_KEY_MAX + 1]; /* Idempotency-Key, "" without one */
} batch_call_t;

/* Answers {"messages":[...]} with the messages as a single publish renders
 * its one; with announce, first puts each on the bus ("message created"),
 * in order: this process's events leave in commit order (publisher.c). */
static void respond_messages(batch_call_t *call, int status, const hs_message_t *msgs, size_t count,
                             bool announce)
{
    static const char head[] = "{\"messages\":[", tail[] = "]}";
    char **texts = hs_malloc((count ? count : 1) * sizeof(*texts));
    size_t *lens = hs_malloc((count ? count : 1) * sizeof(*lens));
    size_t total = sizeof(head) + sizeof(tail) + count;
    for (size_t i = 0; i < count; i++) {
        texts[i] = hs_render_message_text(&msgs[i], &lens[i]);
        total += lens[i];
        if (announce) {
            hs_event_t event = {.topic = msgs[i].topic,
                                .message_id = msgs[i].id,
                                .message_json = texts[i],
                                .message_json_len = lens[i],
                                .prev = msgs[i].prev};
            hs_bus_publish_event(call->publisher->bus, &event, NULL, NULL);
        }
    }
    char *body = hs_malloc(total);
    size_t len = sizeof(head) - 1;
    memcpy(body, head, len);
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            body[len++] = ',';
        memcpy(body + len, texts[i], lens[i]);
        len += lens[i];
        hs_free(texts[i]);
    }
    memcpy(body + len, tail, sizeof(tail) - 1);
    len += sizeof(tail) - 1;
    hs_http_respond(call->req, status, "application/json", NULL, body, len);
    hs_free(body);
    hs_free(texts);
    hs_free(lens);
}

/* New: 201 and the events. A repeat of the key: 200 with the original
 * batch, announcing nothing (its delivery happened the first time), as a
 * single publish's repeat. */
static void put_messages_cb(int status, const hs_message_t *msgs, size_t count, void *data)
{
    batch_call_t *call = data;
    hs_metrics_t *m = &hs_metrics_singleton;
    if (status == 0) {
        m->messages_published += count;
        hs_histogram_observe(&m->publish_commit, (uv_hrtime() - call->started_ns) / 1e9);
        respond_messages(call, 201, msgs, count, true);
    } else if (status == HS_EEXIST) {
        m->idempotent_repeats++;
        respond_messages(call, 200, msgs, count, false);
    } else if (status == HS_EINVAL) {
        hs_http_respond_error(call->req, 422, "idempotency_key_reused",
                              "Idempotency-Key '%s' was used for a different batch or message "
                              "within the idempotency window",
                              call->key);
    } else {
        hs_publisher__respond_internal(call->req, "storing the messages", status);
    }
    hs_free(call);
}

static void post_batch(hs_http_request_t *req, void *ctx)
{
    hs_publisher_t *p = ctx;
    json_t *body = hs_publisher__request_fields(req, false, NULL, 0);
    if (body == NULL)
        return;
    hs_publish_input_t *in = NULL;
    size_t count = 0;
    long index;
    hs_api_error_t err;
    if (hs_decode_batch(body, p->cfg->max_batch, p->cfg->max_content, &in, &count, &index, &err) !=
        0) {
        json_t *members = index >= 0 ? json_pack("{s:I}", "index", (json_int_t)index) : NULL;
        hs_http_respond_error_members(req, err.status, err.code, members, "%s", err.message);
        json_decref(body);
        return;
    }
    size_t key_len = 0;
    const char *key = hs_http_header(req, "idempotency-key", &key_len);
    if (key && hs_idempotency_key_check(key, key_len, &err) != 0) {
        hs_publisher__respond_api_error(req, &err);
        goto out;
    }
    if (!hs_publisher__bus_ready_or_503(p, req))
        goto out;
    batch_call_t *call = hs_calloc(1, sizeof(*call));
    call->publisher = p;
    call->req = req;
    call->started_ns = uv_hrtime();
    /* Candidates only, as a single publish's: the store mints the ids. */
    hs_message_t *msgs = hs_calloc(count, sizeof(*msgs));
    for (size_t i = 0; i < count; i++) {
        hs_ulid_t id;
        hs_ulid_new(&id);
        hs_ulid_format(&id, msgs[i].id);
        msgs[i].topic = in[i].topic;
        msgs[i].content = in[i].content;
        msgs[i].content_len = in[i].content_len;
        msgs[i].author = in[i].author;
        msgs[i].created_ms = hs_ulid_time_ms(&id);
    }
    hs_idempotency_t idem = {0};
    char body_hash[HS_IDEMPOTENCY_HASH_LEN + 1];
    if (key) {
        memcpy(call->key, key, key_len);
        call->key[key_len] = '\0';
        hs_idempotency_batch_hash(in, count, body_hash);
        uint64_t window = p->cfg->idempotency_window_ms;
        idem = (hs_idempotency_t){
            .key = call->key,
            .body_hash = body_hash,
            .not_before_ms = msgs[0].created_ms > window ? msgs[0].created_ms - window : 0};
    }
    /* The store copies what it is given before the call returns. */
    hs_store_put_messages(p->store, msgs, count, key ? &idem : NULL, put_messages_cb, call);
    hs_free(msgs);
out:
    hs_free(in);
    json_decref(body);
}

void hs_publisher__add_batch_routes(hs_publisher_t *p)
{
    hs_router_add(p->router, HTTP_POST, "/api/v1/messages/batch", post_batch, p);
}
