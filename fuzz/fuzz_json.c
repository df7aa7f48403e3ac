/* libFuzzer: the JSON request decoders. The input is a request body; every
 * decoder runs on it, and the history decoder (and the user path and
 * listing decoders) on its first lines as query values. None may crash, and every failure must carry a status and code. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "roles/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int rc, const hs_api_error_t *err)
{
    if (rc != 0 && (err->code == NULL || err->status < 400 || err->message[0] == '\0'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hs_api_error_t err;
    json_t *obj = NULL;
    int rc = hs_decode_body((const char *)data, size, &obj, &err);
    check(rc, &err);
    if (rc == 0) {
        hs_publish_input_t pub;
        check(hs_decode_publish(obj, "author", 65536, &pub, &err), &err);
        check(hs_decode_publish(obj, "sender", 16, &pub, &err), &err);
        hs_subscription_input_t sub;
        check(hs_decode_subscription(obj, true, &sub, &err), &err);
        check(hs_decode_subscription(obj, false, &sub, &err), &err);
        hs_notification_input_t note;
        check(hs_decode_notification(obj, 65536, &note, &err), &err);
        json_decref(obj);
    }
    /* Four NUL-separated query values: topic, lastID, limit, forward. */
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *values[4] = {NULL, NULL, NULL, NULL};
    char *p = copy;
    for (int i = 0; i < 4 && p < copy + size; i++) {
        values[i] = p;
        p += strlen(p) + 1;
    }
    hs_history_query_t q;
    check(hs_decode_history(values[0], values[1], values[2], values[3], &q, &err), &err);
    /* The first value as a user id from a path, the next two as the user
     * connections listing's after and limit. */
    char user[HS_USER_ID_CAP];
    check(hs_decode_user_path(values[0] ? values[0] : "", user, &err), &err);
    hs_user_connections_query_t uq;
    check(hs_decode_user_connections_query(values[1], values[2], &uq, &err), &err);
    hs_content_type_is_json(copy, strlen(copy));
    free(copy);
    return 0;
}
