/*
 * log.h - the gateway's one way to write a log line.
 *
 * Every line goes to stderr as "LEVEL component: message" ("warn broker: worker w1
 * removed: silent"), one line per call, so that `grep 'broker:'` finds a subsystem's
 * lines and `grep '^error'` the failures.  With JSON lines on, each line is instead an
 * object {"ts":..., "level":"warn", "component":"broker", "msg":"..."} for log
 * collectors.  Lines below the minimum level are dropped before they are formatted.
 *
 * The settings are the process's own (one loop, one config: STYLE.md habit 12) and are
 * meant to be set once at start-up, before the loop runs.
 */
#ifndef BARISTA_GW_LOG_H
#define BARISTA_GW_LOG_H

#include <stdbool.h>

typedef enum gw_log_level {
    GW_LOG_DEBUG, /* what a developer chasing a bug wants */
    GW_LOG_INFO,  /* lifecycle: listening, a worker joined, draining */
    GW_LOG_WARN,  /* something refused or lost that the gateway survives */
    GW_LOG_ERROR, /* a call that failed and left a feature unusable */
} gw_log_level;

/* What is written until gw_log_configure() says otherwise; also the defaults of the
 * gateway's --log-level and --log-format. */
#define GW_LOG_DEFAULT_LEVEL GW_LOG_INFO
#define GW_LOG_DEFAULT_JSON  false

/* The level names in gw_log_level order, NULL-terminated: "debug" ... "error". */
extern const char *const gw_log_level_names[];

/* The longest message written; longer ones are cut. */
#define GW_LOG_LINE_MAX 1024

/* Lines below `min` are dropped; `json` switches to JSON lines. */
void gw_log_configure(gw_log_level min, bool json);

/* Parses "debug", "info", "warn" or "error" into *out.  0 or BR_EVALUE. */
int gw_log_level_parse(const char *name, gw_log_level *out);

/* Writes one line for `component` (a short lowercase word: "http", "broker", "jobs",
 * "supervisor", "admin", "gateway"). */
void gw_log(gw_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* BARISTA_GW_LOG_H */
