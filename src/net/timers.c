/* timers.c - the connections' timers: one libuv timer per net and a binary
 * min-heap of the connections that have a deadline, instead of a uv_timer_t
 * (152 bytes) in every connection, idle ones included.
 *
 * Order is libuv's: by deadline (loop time in ms), then by start. A timer
 * started inside a timer callback, even one due at once, fires in a later
 * iteration (libuv's run of due timers does the same), so a callback that
 * restarts itself with 0 ms cannot hold the loop. A start or a stop is
 * O(log n); the libuv timer is re-armed only when the earliest deadline
 * changes. Loop thread only.
 */
#include "core/alloc.h"
#include "net/net_internal.h"

#define NOT_ARMED UINT64_MAX

/* Start numbers wrap; two timers due in the same millisecond were started
 * less than 2^31 starts apart. */
static bool started_before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static bool earlier(const hs_conn_t *a, const hs_conn_t *b)
{
    return a->timer_due < b->timer_due ||
           (a->timer_due == b->timer_due && started_before(a->timer_seq, b->timer_seq));
}

static void place(hs_net_t *net, size_t i, hs_conn_t *conn)
{
    net->timers[i] = conn;
    conn->timer_slot = (unsigned)i + 1;
}

static void sift_up(hs_net_t *net, size_t i)
{
    hs_conn_t *conn = net->timers[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(conn, net->timers[parent]))
            break;
        place(net, i, net->timers[parent]);
        i = parent;
    }
    place(net, i, conn);
}

static void sift_down(hs_net_t *net, size_t i)
{
    hs_conn_t *conn = net->timers[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= net->timer_count)
            break;
        if (child + 1 < net->timer_count && earlier(net->timers[child + 1], net->timers[child]))
            child++;
        if (!earlier(net->timers[child], conn))
            break;
        place(net, i, net->timers[child]);
        i = child;
    }
    place(net, i, conn);
}

static void heap_remove(hs_net_t *net, hs_conn_t *conn)
{
    size_t i = conn->timer_slot - 1;
    conn->timer_slot = 0;
    hs_conn_t *last = net->timers[--net->timer_count];
    if (i < net->timer_count) {
        place(net, i, last);
        sift_down(net, i);
        sift_up(net, last->timer_slot - 1);
    }
    /* A heap that grew for a crowd gives memory back as it leaves. */
    if (net->timer_cap > 64 && net->timer_count < net->timer_cap / 4) {
        net->timer_cap /= 2;
        net->timers = hs_realloc(net->timers, net->timer_cap * sizeof(*net->timers));
    }
}

static void timers_cb(uv_timer_t *handle);

/* Sets the libuv timer for the earliest deadline, when that changed. */
static void rearm(hs_net_t *net)
{
    if (net->timer_count == 0) {
        if (net->timer_armed != NOT_ARMED) {
            uv_timer_stop(&net->timer);
            net->timer_armed = NOT_ARMED;
        }
        return;
    }
    uint64_t due = net->timers[0]->timer_due;
    if (due == net->timer_armed)
        return;
    uint64_t now = uv_now(net->loop);
    uv_timer_start(&net->timer, timers_cb, due > now ? due - now : 0, 0);
    net->timer_armed = due;
}

static void timers_cb(uv_timer_t *handle)
{
    hs_net_t *net = handle->data;
    net->timer_armed = NOT_ARMED;
    uint64_t now = uv_now(net->loop);
    /* Only timers started before this run: one a callback starts waits for
     * the next iteration. It sorts after every earlier due one (its
     * deadline is at least now, its start later), so the walk stops at it. */
    uint32_t before = net->timer_seq;
    while (net->timer_count > 0) {
        hs_conn_t *conn = net->timers[0];
        if (conn->timer_due > now || !started_before(conn->timer_seq, before))
            break;
        heap_remove(net, conn);
        /* May start or stop any timer, close any connection; a closed
         * connection leaves the heap and is freed after this run. */
        hs_conn__timer_fired(conn);
    }
    rearm(net);
}

void hs_net__timers_init(hs_net_t *net)
{
    uv_timer_init(net->loop, &net->timer);
    net->timer.data = net;
    net->timer_armed = NOT_ARMED;
}

void hs_net__timer_start(hs_conn_t *conn, uint64_t timeout_ms)
{
    hs_net_t *net = conn->net;
    if (conn->timer_slot)
        heap_remove(net, conn);
    conn->timer_due = uv_now(net->loop) + timeout_ms;
    conn->timer_seq = net->timer_seq++;
    if (net->timer_count == net->timer_cap) {
        net->timer_cap = net->timer_cap ? net->timer_cap * 2 : 64;
        net->timers = hs_realloc(net->timers, net->timer_cap * sizeof(*net->timers));
    }
    place(net, net->timer_count++, conn);
    sift_up(net, net->timer_count - 1);
    rearm(net);
}

void hs_net__timer_stop(hs_conn_t *conn)
{
    if (conn->timer_slot == 0)
        return;
    heap_remove(conn->net, conn);
    rearm(conn->net);
}

void hs_net__timers_close(hs_net_t *net, uv_close_cb cb)
{
    hs_free(net->timers);
    net->timers = NULL;
    net->timer_count = net->timer_cap = 0;
    uv_close((uv_handle_t *)&net->timer, cb);
}
