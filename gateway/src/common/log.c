/*
 * log.c - one line per call on stderr, as text or as JSON lines (log.h).
 *
 * The line is formatted into a stack buffer and written with one fputs, so that lines
 * of the gateway and its spawned workers, which share stderr, never interleave
 * mid-line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <barista/proto.h>

#include "json.h"
#include "log.h"

static gw_log_level log_min = GW_LOG_DEFAULT_LEVEL; /* lines below are dropped */
static bool log_json = GW_LOG_DEFAULT_JSON;         /* JSON lines instead of text */

const char *const gw_log_level_names[] = {"debug", "info", "warn", "error", NULL};

void gw_log_configure(gw_log_level min, bool json)
{
    log_min = min;
    log_json = json;
}

int gw_log_level_parse(const char *name, gw_log_level *out)
{
    for (size_t i = 0; gw_log_level_names[i]; i++)
        if (strcmp(name, gw_log_level_names[i]) == 0) {
            *out = (gw_log_level)i;
            return 0;
        }
    return BR_EVALUE;
}

/* The line as a JSON object: the message escaped by the JSON writer every answer uses. */
static void write_json(gw_log_level level, const char *component, const char *msg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[GW_LOG_LINE_MAX * 2 + 128];
    br_buf out = {.data = (uint8_t *)line, .cap = sizeof(line), .max = sizeof(line) - 2};
    char head[96];
    int n = snprintf(head, sizeof(head),
                     "{\"ts\":%lld.%03ld,\"level\":\"%s\",\"component\":", (long long)ts.tv_sec,
                     ts.tv_nsec / 1000000, gw_log_level_names[level]);
    if (br_buf_append(&out, head, (size_t)n) != 0 ||
        gw_json_append_string(&out, component, strlen(component)) != 0 ||
        br_buf_append(&out, ",\"msg\":", 7) != 0 ||
        gw_json_append_string(&out, msg, strlen(msg)) != 0 || br_buf_append(&out, "}\n", 2) != 0)
        return;
    fwrite(out.data, 1, out.len, stderr);
}

void gw_log(gw_log_level level, const char *component, const char *fmt, ...)
{
    if (level < log_min || level > GW_LOG_ERROR)
        return;
    char msg[GW_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_json) {
        write_json(level, component, msg);
        return;
    }
    char line[GW_LOG_LINE_MAX + 64];
    snprintf(line, sizeof(line), "%s %s: %s\n", gw_log_level_names[level], component, msg);
    fputs(line, stderr);
}
