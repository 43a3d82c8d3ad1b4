/*
 * config.h - the gateway's options: defaults, then BARISTA_* environment variables,
 * then command-line flags (a flag wins over its variable).
 *
 * Every option is one row of a table in config.c, so `--help`, the environment and
 * the flags can never disagree.  Components that join the gateway (broker, jobs,
 * local-mode supervisor) add their fields to gw_config and their rows to the table.
 *
 * Defaults follow the convention of every gateway subsystem: each value is written
 * once, as a named macro - the subsystems' in their own headers (GW_HTTP_*,
 * GW_BROKER_*, GW_JOBS_*, GW_LOG_DEFAULT_*), the gateway's own below - and
 * gw__config_defaults() fills the whole struct from them and from the subsystems'
 * gw_X_config_defaults().  --help prints the defaults from that struct, so it cannot
 * disagree with them either.
 */
#ifndef BARISTA_GW_CONFIG_H
#define BARISTA_GW_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "actors.h"
#include "broker.h"
#include "edge.h"
#include "http_server.h"
#include "jobs.h"
#include "websocket.h"

/* Longest HOST:PORT accepted for an address option. */
#define GW_CONFIG_MAX_ADDR 256

/* Defaults of the gateway's own options, by name. */
#define GW_CONFIG_LISTEN              "0.0.0.0:8000"
#define GW_CONFIG_SHUTDOWN_TIMEOUT_MS 10000u
#define GW_CONFIG_IO_WORKERS          1u
#define GW_CONFIG_CPU_WORKERS         2u
#define GW_CONFIG_IO_SERVICES         "hello,sleep,echo,dashboard,fetch,signup,email,counter,clock,upload,relay"
#define GW_CONFIG_CPU_SERVICES        "hash,report"
#define GW_CONFIG_WORKER_BIN          "barista-worker"
#define GW_CONFIG_CURVE_WATCH         1u
#define GW_CONFIG_PROCESSES           1u
/* Most gateway processes --processes starts. */
#define GW_CONFIG_MAX_PROCESSES 64u
/* --broker's default: in local mode a private ipc:// socket (gateway_start makes its
 * directory), otherwise GW_BROKER_ENDPOINT, loopback only. */
#define GW_CONFIG_BROKER_AUTO "auto"

typedef struct gw_config {
    char listen[GW_CONFIG_MAX_ADDR];          /* HTTP listen address as given, "0.0.0.0:8000" */
    struct sockaddr_storage listen_addr;      /* the same, parsed */
    gw_http_config http;                      /* the HTTP server's limits and timeouts */
    uint32_t shutdown_timeout_ms;             /* SIGTERM: how long in-flight requests may run */
    char broker_endpoint[GW_CONFIG_MAX_ADDR]; /* ROUTER bind address for workers; "auto":
                                                 ipc:// in local mode, else loopback */
    uint32_t insecure_broker;                 /* 1: a non-loopback broker without CURVE is
                                                 meant (--insecure-broker) */
    uint32_t worker_header;                   /* 1: replies carry x-barista-worker */
    gw_broker_config broker;                  /* the broker's options (endpoint set by main) */
    gw_ws_config ws;                          /* WebSocket limits (main points broker.ws here) */
    uint32_t ws_deflate;                      /* 1: permessage-deflate accepted (ws.deflate) */
    uint32_t broker_retry;                    /* 1: retry a dead worker's GET/HEAD once */
    uint32_t processes;                       /* gateway processes on the HTTP port */
    char process_base[GW_CONFIG_MAX_ADDR];    /* --processes: the broker endpoint every
                                                 process's own is derived from ("" before
                                                 gw__config_for_process) */
    uint32_t local;                           /* 1: spawn and supervise workers (local mode) */
    uint32_t check_replies;                   /* 1: check replies against declared schemas */
    uint32_t io_workers;                      /* local mode: I/O worker processes */
    uint32_t cpu_workers;                     /* local mode: CPU worker processes */
    char io_services[GW_CONFIG_MAX_ADDR];     /* local mode: services of each I/O worker */
    char cpu_services[GW_CONFIG_MAX_ADDR];    /* local mode: services of each CPU worker */
    char worker_bin[GW_CONFIG_MAX_ADDR];      /* local mode: barista-worker; "" = beside us */
    char jobs_db[GW_CONFIG_MAX_ADDR];         /* SQLite file of the job store */
    char actors_db[GW_CONFIG_MAX_ADDR];       /* SQLite file of the actor state store */
    gw_jobs_config jobs;                      /* the job queue's options (db set by main) */
    char curve_secret_key_file[GW_CONFIG_MAX_ADDR]; /* broker's CURVE key pair; "" = off */
    char curve_authorized_keys[GW_CONFIG_MAX_ADDR]; /* authorised worker keys; "" = off */
    uint32_t curve_watch;                           /* 1: reload them when they change */
    uint32_t log_level;                             /* a gw_log_level: lines below are dropped */
    uint32_t log_json;                              /* 1: JSON lines; 0: text */
    /* The edge (edge.h), as the option table stores it; gw__config_edge() turns it into
     * a gw_edge_config. */
    char access_log[GW_CONFIG_MAX_ADDR];          /* "-" stderr, a file, "off" */
    uint32_t access_log_json;                     /* 1: JSON lines; 0: common log */
    uint32_t access_log_sample;                   /* 1 in N answers below 400 */
    char cors_origins[GW_CONFIG_MAX_ADDR];        /* "" off, "*", or a list */
    char cors_methods[GW_CONFIG_MAX_ADDR];        /* allowed methods */
    char cors_headers[GW_CONFIG_MAX_ADDR];        /* allowed request headers */
    char cors_expose[GW_CONFIG_MAX_ADDR];         /* headers a page may read */
    uint32_t cors_credentials;                    /* 1: allow credentials */
    uint32_t cors_max_age_s;                      /* preflight cache time */
    uint32_t compress;                            /* 1: compress answers */
    size_t compress_min_bytes;                    /* smallest body compressed */
    uint32_t gzip_level;                          /* 1..9 */
    uint32_t brotli_quality;                      /* 0..11 */
    size_t max_inflated_bytes;                    /* gzip request body limit, inflated */
    uint32_t auth_default;                        /* index in auth_modes: none/optional/required */
    char jwt_secret_file[GW_CONFIG_MAX_ADDR];     /* HS256 secret */
    char jwt_public_key_file[GW_CONFIG_MAX_ADDR]; /* RS256/ES256 PEM public key */
    char jwks_file[GW_CONFIG_MAX_ADDR];           /* JWKS document */
    char jwt_issuer[GW_CONFIG_MAX_ADDR];          /* required iss */
    char jwt_audience[GW_CONFIG_MAX_ADDR];        /* required aud */
    uint32_t jwt_leeway_ms;                       /* clock skew on exp/nbf */
    char api_keys_file[GW_CONFIG_MAX_ADDR];       /* hashed API keys */
    uint32_t rate_ip;                             /* requests/s per client address; 0 off */
    uint32_t rate_key;                            /* requests/s per subject or key; 0 off */
    uint32_t rate_route;                          /* requests/s per route; 0 off */
    uint32_t rate_burst;                          /* bucket size = rate x this */
    char trusted_proxies[GW_CONFIG_MAX_ADDR];     /* addresses/CIDRs allowed to forward */
} gw_config;

/* The edge's configuration from cfg's fields (strings point into cfg). */
void gw__config_edge(const gw_config *cfg, gw_edge_config *out);

/* What gw__config_load() decided. */
typedef enum gw_config_result {
    GW_CONFIG_RUN = 0,  /* options valid: run */
    GW_CONFIG_HELP = 1, /* --help was printed to stdout: exit 0 */
    GW_CONFIG_BAD = 2   /* a one-line reason was printed to `err`: exit 2 */
} gw_config_result;

/* Fills *cfg with every default (see above). */
void gw__config_defaults(gw_config *cfg);

/* Fills *cfg from the defaults, the environment and argv (argv[0] is the program).
 * Refuses (GW_CONFIG_BAD, one line on err) a broker endpoint reachable from other
 * hosts without CURVE unless --insecure-broker says it is meant; resolves "auto" to
 * GW_BROKER_ENDPOINT outside local mode. */
gw_config_result gw__config_load(gw_config *cfg, int argc, char **argv, FILE *err);

/* Process `index` of --processes N (index 0 .. N-1): its own broker endpoint (a
 * tcp:// endpoint's port + index, an ipc:// path + "." + index; "auto" and index 0
 * unchanged) and its own job store (the file + "." + index for index > 0), and
 * SO_REUSEPORT on the HTTP port.  0, or BR_EINVAL (one line on err) when the endpoint
 * cannot be derived (no port, a port past 65535, too long). */
int gw__config_for_process(gw_config *cfg, unsigned index, FILE *err);

/* After gw__config_for_process: the broker endpoint of process `index` (of
 * cfg->processes), so that local workers can register with every process.  0, or
 * BR_EINVAL when it cannot be known ("auto", whose ipc:// directory each process makes
 * for itself, or a tcp:// port "*"). */
int gw__config_process_endpoint(const gw_config *cfg, unsigned index, char *out, size_t cap);

/* Prints every option with its default and its environment variable (stdout: --help). */
void gw__config_usage(FILE *out);

/* Parses "HOST:PORT" or "[IPV6]:PORT" (numeric hosts).  Returns 0 or BR_EINVAL. */
int gw__config_parse_addr(const char *text, struct sockaddr_storage *out);

#endif /* BARISTA_GW_CONFIG_H */
