/* wsproto: the few pieces of HTTP/1.1 and RFC 6455 that the bench tools
 * (wsload, ceiling) share. Pure functions on byte buffers; no I/O, no state.
 * Frame headers are parsed by houston's own parser, hs_ws_parse_header in
 * src/ws/codec.c (the bench links hs_ws for it): one parser for the server,
 * the CLI and the bench. What is here writes the client's frames. */
#ifndef BENCH_WSPROTO_H
#define BENCH_WSPROTO_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds; comparable across processes of one host. */
uint64_t wsp_now_ns(void);

/* Writes a frame header for a payload of len bytes into out (at least 14
 * bytes). mask != NULL makes a masked (client) frame; the caller masks the
 * payload with wsp_mask(). Returns the header length. */
size_t wsp_frame_header(uint8_t *out, int opcode, uint64_t len, const uint8_t *mask);

/* XORs data with the 4-byte mask, in place. */
void wsp_mask(uint8_t *data, size_t len, const uint8_t mask[4]);

/* Offset just past the "\r\n\r\n" that ends an HTTP head in buf, or 0. */
size_t wsp_http_head_end(const char *buf, size_t len);

/* Finds header `name` (case-insensitive) in the head [buf, buf+head_len).
 * On success stores a pointer to its trimmed value and its length and
 * returns 1; 0 when absent. */
int wsp_http_header(const char *buf, size_t head_len, const char *name, const char **value,
                    size_t *value_len);

/* Status code of a response head ("HTTP/1.1 201 Created"), or -1. */
int wsp_http_status(const char *buf, size_t head_len);

#endif
