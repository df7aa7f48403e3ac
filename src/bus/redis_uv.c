#include "bus/redis_uv.h"

#include "core/alloc.h"
#include "core/error.h"

typedef struct redis_uv {
    redisAsyncContext *ac; /* NULL once hiredis let go of the context */
    uv_poll_t poll;
    int events; /* UV_READABLE | UV_WRITABLE hiredis waits for */
} redis_uv_t;

static void poll_cb(uv_poll_t *handle, int status, int events)
{
    redis_uv_t *p = handle->data;
    /* On an error libuv has stopped the poll; let hiredis try what it was
     * waiting for, so it meets the error itself. */
    int ready = status < 0 ? p->events : events;
    if (p->ac && (ready & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (ready & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void update(redis_uv_t *p, int add, int remove)
{
    int events = (p->events | add) & ~remove;
    if (events == p->events || p->ac == NULL)
        return;
    p->events = events;
    if (events)
        uv_poll_start(&p->poll, events, poll_cb);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *data)
{
    update(data, UV_READABLE, 0);
}

static void del_read(void *data)
{
    update(data, 0, UV_READABLE);
}

static void add_write(void *data)
{
    update(data, UV_WRITABLE, 0);
}

static void del_write(void *data)
{
    update(data, 0, UV_WRITABLE);
}

static void closed_cb(uv_handle_t *handle)
{
    hs_free(handle->data);
}

/* hiredis is freeing the context: stop watching its socket. */
static void cleanup(void *data)
{
    redis_uv_t *p = data;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, closed_cb);
}

int hs_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return HS_EEXIST;
    redis_uv_t *p = hs_calloc(1, sizeof(*p));
    if (uv_poll_init_socket(loop, &p->poll, ac->c.fd) != 0) {
        hs_free(p);
        return HS_EIO;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
