/* redis_uv.h - drives a hiredis asynchronous context from a libuv loop.
 *
 * hiredis ships an adapter for libuv, but the one in Debian 12 (hiredis
 * 0.14) drops every poll error: libuv reports a refused connect, or a
 * connection reset by a Redis that was killed, as a poll error, so the
 * context never learns it is dead - commands queue up forever and the
 * reconnect logic never runs. This adapter hands an error to hiredis as the
 * events it was waiting for, so its read or write finds the error and the
 * context fails the normal way (connect or disconnect callback).
 */
#ifndef HS_BUS_REDIS_UV_H
#define HS_BUS_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Returns 0, or HS_EEXIST when the context already has an event library. */
int hs_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
