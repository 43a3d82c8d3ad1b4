/*
 * http_stats.c - the HTTP server's counters for GET /metrics.
 *
 * Counting happens on the loop thread as plain integer increments: one per accepted
 * connection, one per read, and per answer a status class, a byte count and a
 * histogram bucket found by a short linear scan.  Nothing here allocates.
 */
#include <string.h>

#include "http_conn.h"

/* From 0.5 ms to 10 s: the gateway's own routes answer in microseconds, workers in
 * milliseconds, slow routes (sleep, jobs waiting for durability) in seconds. */
const uint32_t gw_http_duration_bounds_us[GW_HTTP_DURATION_BUCKETS] = {
    500,    1000,   2500,   5000,    10000,   25000,   50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

void gw__response_count(gw_http_req *req, int status, size_t bytes)
{
    gw_http_stats *st = &req->conn->server->stats;
    if (status >= 100 && status <= 599)
        st->status[status / 100 - 1]++;
    st->bytes_out += bytes;
    if (req->pub.received_ns == 0)
        return; /* answered before its request line began: nothing to time */
    uint64_t us = (uv_hrtime() - req->pub.received_ns) / 1000;
    size_t i = 0;
    while (i < GW_HTTP_DURATION_BUCKETS && us > gw_http_duration_bounds_us[i])
        i++;
    st->duration[i]++;
    st->duration_sum_us += us;
}

void gw_http_server_stats_get(const gw_http_server *self, gw_http_stats *out)
{
    if (!self) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = self->stats;
}
