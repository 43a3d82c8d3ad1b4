/*
 * config.c - the option table and its parsers.
 *
 * Values: sizes are bytes with an optional k or m suffix (KiB, MiB); durations are a
 * number with a unit, ms, s or m (a bare number is seconds, as in nginx); counts are
 * plain numbers; choices are one of the row's words.  A value out of its row's range
 * is refused with the range (or the words).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "barista/proto.h"
#include "log.h"

typedef enum opt_kind {
    OPT_ADDR,     /* HOST:PORT into a char[GW_CONFIG_MAX_ADDR] + the parsed address */
    OPT_SIZE,     /* size_t bytes */
    OPT_DURATION, /* uint32_t milliseconds */
    OPT_COUNT,    /* uint32_t */
    OPT_TEXT,     /* a string into a char[GW_CONFIG_MAX_ADDR], e.g. a ZeroMQ endpoint */
    OPT_FLAG,     /* uint32_t 0/1; the flag alone means 1, "--x=0" or the variable set it */
    OPT_PATH,     /* like OPT_TEXT, but "" (the default) is allowed and means "not set" */
    OPT_CHOICE    /* one of the row's words; the uint32_t field holds its index */
} opt_kind;

/* One option: the flag is "--" + name, the variable is "BARISTA_" + NAME.  Its default
 * is the field's value after gw__config_defaults(). */
typedef struct opt {
    const char *name;           /* flag name without "--" */
    const char *env;            /* environment variable */
    opt_kind kind;              /* how the value parses */
    size_t offset;              /* field in gw_config */
    uint64_t min, max;          /* accepted range (bytes, ms or count) */
    const char *help;           /* one line */
    const char *const *choices; /* OPT_CHOICE: the words, NULL-terminated */
} opt;

static const char *const log_formats[] = {"text", "json", NULL};      /* log_json 0, 1 */
static const char *const access_formats[] = {"common", "json", NULL}; /* access_log_json */
/* auth_default's words; index + 1 is the br_auth_mode. */
static const char *const auth_modes[] = {"none", "optional", "required", NULL};
static const char *const off_on[] = {"off", "on", NULL}; /* index: 0 off, 1 on */

#define F(field) offsetof(gw_config, field)
#define KIB      1024u
#define MIB      (1024u * 1024u)
#define HOUR_MS  (3600u * 1000u)

static const opt options[] = {
    {"listen", "BARISTA_LISTEN", OPT_ADDR, F(listen), 0, 0,
     "HTTP listen address, HOST:PORT or [IPV6]:PORT", NULL},
    {"max-url-bytes", "BARISTA_MAX_URL_BYTES", OPT_SIZE, F(http.max_url_bytes), 64, MIB,
     "longest request target (414 beyond)", NULL},
    {"max-header-bytes", "BARISTA_MAX_HEADER_BYTES", OPT_SIZE, F(http.max_header_bytes), 256,
     16 * MIB, "request line + header lines of one request, every byte (431 beyond)", NULL},
    {"max-headers", "BARISTA_MAX_HEADERS", OPT_COUNT, F(http.max_headers), 1, 10000,
     "header fields in one request (431 beyond)", NULL},
    {"max-body-bytes", "BARISTA_MAX_BODY_BYTES", OPT_SIZE, F(http.max_body_bytes), 1, 8 * MIB,
     "request body (413 beyond; checked before reading)", NULL},
    {"max-body-buffer", "BARISTA_MAX_BODY_BUFFER", OPT_SIZE, F(http.max_body_buffer), 1,
     (uint64_t)64 * 1024 * MIB, "request body bytes all connections hold at once (503 beyond)",
     NULL},
    {"max-chunk-ext-bytes", "BARISTA_MAX_CHUNK_EXT_BYTES", OPT_SIZE, F(http.max_chunk_ext_bytes), 1,
     MIB, "chunk extensions and size padding in one chunked body (400 beyond)", NULL},
    {"header-timeout", "BARISTA_HEADER_TIMEOUT", OPT_DURATION, F(http.header_timeout_ms), 1,
     HOUR_MS, "time to receive a request's headers (408, close)", NULL},
    {"body-timeout", "BARISTA_BODY_TIMEOUT", OPT_DURATION, F(http.body_timeout_ms), 1, HOUR_MS,
     "longest pause between body reads (408, close)", NULL},
    {"keepalive-timeout", "BARISTA_KEEPALIVE_TIMEOUT", OPT_DURATION, F(http.keepalive_timeout_ms),
     1, HOUR_MS, "idle keep-alive connection lifetime", NULL},
    {"send-timeout", "BARISTA_SEND_TIMEOUT", OPT_DURATION, F(http.send_timeout_ms), 1, HOUR_MS,
     "a response write not done in this time closes the connection", NULL},
    {"max-connections", "BARISTA_MAX_CONNECTIONS", OPT_COUNT, F(http.max_connections), 1, 1000000,
     "open connections (503 + Retry-After, close beyond)", NULL},
    {"max-pipeline", "BARISTA_MAX_PIPELINE", OPT_COUNT, F(http.max_pipeline), 1, 1024,
     "requests queued per connection before reading pauses", NULL},
    {"max-output-bytes", "BARISTA_MAX_OUTPUT_BYTES", OPT_SIZE, F(http.max_output_bytes), 1,
     256 * MIB, "unwritten request + answer bytes per connection before reading pauses", NULL},
    {"broker", "BARISTA_BROKER", OPT_TEXT, F(broker_endpoint), 0, 0,
     "ZeroMQ endpoint the broker binds for workers; auto: a private ipc:// socket with "
     "--local, else " GW_BROKER_ENDPOINT,
     NULL},
    {"insecure-broker", "BARISTA_INSECURE_BROKER", OPT_FLAG, F(insecure_broker), 0, 1,
     "allow a broker endpoint other hosts can reach WITHOUT CURVE: any process that "
     "reaches it can register as a worker",
     NULL},
    {"max-worker-credit", "BARISTA_MAX_WORKER_CREDIT", OPT_COUNT, F(broker.max_worker_credit), 1,
     1000000, "cap on the requests one worker may hold, whatever capacity it announces", NULL},
    {"max-worker-bytes", "BARISTA_MAX_WORKER_BYTES", OPT_SIZE, F(broker.max_worker_bytes), 64 * KIB,
     1024 * MIB, "bytes of unanswered requests at one worker before it is sent no more", NULL},
    {"service-max-pending", "BARISTA_SERVICE_MAX_PENDING", OPT_COUNT, F(broker.service_max_pending),
     1, 10000000, "requests one service may hold, queued + in flight (503 + Retry-After beyond)",
     NULL},
    {"cancel-grace", "BARISTA_CANCEL_GRACE", OPT_DURATION, F(broker.cancel_grace_ms), 1, HOUR_MS,
     "a worker leaving a CANCEL unanswered this long is unhealthy and sent nothing", NULL},
    {"service-grace", "BARISTA_SERVICE_GRACE", OPT_DURATION, F(broker.service_grace_ms), 1,
     24 * HOUR_MS, "a service without a worker this long is retired: its routes go", NULL},
    {"stream-idle-timeout", "BARISTA_STREAM_IDLE_TIMEOUT", OPT_DURATION, F(broker.stream_idle_ms),
     1, 24 * HOUR_MS, "a streamed response with no chunk (and no client progress) this long is cut",
     NULL},
    {"stream-buffer-bytes", "BARISTA_STREAM_BUFFER_BYTES", OPT_SIZE, F(broker.stream_buffer_bytes),
     4 * KIB, 64 * MIB, "bytes one streamed response may hold in the gateway (flow control)", NULL},
    {"call-gather-max", "BARISTA_CALL_GATHER_MAX", OPT_SIZE, F(broker.call_gather_max), 1, 8 * MIB,
     "body bytes of a streamed answer a worker's call gets gathered into one reply (502 "
     "beyond)",
     NULL},
    {"call-gather-total", "BARISTA_CALL_GATHER_TOTAL", OPT_SIZE, F(broker.call_gather_total), 1,
     (uint64_t)64 * 1024 * MIB,
     "bytes all calls being gathered hold at once (503 beyond); the default, 64 MiB, is eight "
     "calls at the full --call-gather-max instead of 8 MiB per pending call",
     NULL},
    {"stream-body-max", "BARISTA_STREAM_BODY_MAX", OPT_SIZE, F(broker.stream_body_max), 1,
     (uint64_t)64 * 1024 * MIB, "a streamed request body's cap (413 beyond); routes may set less",
     NULL},
    {"ws-max-frame-bytes", "BARISTA_WS_MAX_FRAME_BYTES", OPT_SIZE, F(ws.max_frame_bytes), 125,
     256 * MIB, "WebSocket: payload of one client frame (close 1009 beyond)", NULL},
    {"ws-max-message-bytes", "BARISTA_WS_MAX_MESSAGE_BYTES", OPT_SIZE, F(ws.max_message_bytes), 125,
     256 * MIB, "WebSocket: one client message, inflated when compressed (close 1009 beyond)",
     NULL},
    {"ws-max-output-bytes", "BARISTA_WS_MAX_OUTPUT_BYTES", OPT_SIZE, F(ws.max_output_bytes),
     4 * KIB, 1024 * MIB,
     "WebSocket: bytes queued for one client (close 1008 when a message would pass it)", NULL},
    {"ws-ping-interval", "BARISTA_WS_PING_INTERVAL", OPT_DURATION, F(ws.ping_interval_ms), 100,
     24 * HOUR_MS, "WebSocket: a connection silent this long is pinged", NULL},
    {"ws-pong-timeout", "BARISTA_WS_PONG_TIMEOUT", OPT_DURATION, F(ws.pong_timeout_ms), 100,
     HOUR_MS, "WebSocket: still silent this long after the ping, it is dropped", NULL},
    {"ws-close-timeout", "BARISTA_WS_CLOSE_TIMEOUT", OPT_DURATION, F(ws.close_timeout_ms), 100,
     HOUR_MS, "WebSocket: wait for the client's close frame after ours", NULL},
    {"ws-deflate", "BARISTA_WS_DEFLATE", OPT_CHOICE, F(ws_deflate), 0, 0,
     "WebSocket: accept permessage-deflate (RFC 7692) when a client offers it", off_on},
    {"ws-deflate-min-bytes", "BARISTA_WS_DEFLATE_MIN_BYTES", OPT_SIZE, F(ws.deflate_min_bytes), 0,
     256 * MIB, "WebSocket: with deflate, shorter messages to clients go uncompressed", NULL},
    {"worker-header", "BARISTA_WORKER_HEADER", OPT_FLAG, F(worker_header), 0, 1,
     "1: replies name their worker in x-barista-worker (internal host names)", NULL},
    {"broker-heartbeat", "BARISTA_BROKER_HEARTBEAT", OPT_DURATION, F(broker.heartbeat_ms), 10,
     60000, "heartbeat period between broker and workers", NULL},
    {"broker-liveness", "BARISTA_BROKER_LIVENESS", OPT_COUNT, F(broker.liveness), 2, 100,
     "heartbeat periods of silence after which a worker is dead", NULL},
    {"default-timeout", "BARISTA_DEFAULT_TIMEOUT", OPT_DURATION, F(broker.default_timeout_ms), 1,
     HOUR_MS, "deadline of a request whose route sets none (504 beyond)", NULL},
    {"max-timeout", "BARISTA_MAX_TIMEOUT", OPT_DURATION, F(broker.max_timeout_ms), 1, HOUR_MS,
     "cap on every request deadline, route timeouts included", NULL},
    {"queue-limit", "BARISTA_QUEUE_LIMIT", OPT_COUNT, F(broker.queue_limit), 1, 1000000,
     "requests per service waiting for worker credit (503 + Retry-After beyond)", NULL},
    {"max-pending", "BARISTA_MAX_PENDING", OPT_COUNT, F(broker.max_pending), 1, 10000000,
     "requests the broker holds at once (503 + Retry-After beyond)", NULL},
    {"broker-retry", "BARISTA_BROKER_RETRY", OPT_COUNT, F(broker_retry), 0, 1,
     "1: a GET/HEAD whose worker died is retried once on another worker", NULL},
    {"check-replies", "BARISTA_CHECK_REPLIES", OPT_FLAG, F(check_replies), 0, 1,
     "debug: log every structured reply that breaks its route's declared response schema", NULL},
    {"processes", "BARISTA_PROCESSES", OPT_COUNT, F(processes), 1, GW_CONFIG_MAX_PROCESSES,
     "gateway processes sharing the HTTP port (SO_REUSEPORT); process i's broker "
     "endpoint is --broker's port + i (* stays *), an ipc:// path + .i",
     NULL},
    {"local", "BARISTA_LOCAL", OPT_FLAG, F(local), 0, 1,
     "spawn and supervise worker processes (no value needed: --local)", NULL},
    {"io-workers", "BARISTA_IO_WORKERS", OPT_COUNT, F(io_workers), 0, 256,
     "local mode: I/O worker processes", NULL},
    {"cpu-workers", "BARISTA_CPU_WORKERS", OPT_COUNT, F(cpu_workers), 0, 256,
     "local mode: CPU worker processes", NULL},
    {"io-services", "BARISTA_IO_SERVICES", OPT_TEXT, F(io_services), 0, 0,
     "local mode: services each I/O worker hosts", NULL},
    {"cpu-services", "BARISTA_CPU_SERVICES", OPT_TEXT, F(cpu_services), 0, 0,
     "local mode: services each CPU worker hosts", NULL},
    {"worker-bin", "BARISTA_WORKER_BIN", OPT_TEXT, F(worker_bin), 0, 0,
     "local mode: worker program; a bare name is looked up beside barista-gateway", NULL},
    {"jobs-db", "BARISTA_JOBS_DB", OPT_TEXT, F(jobs_db), 0, 0,
     "durable job store: a SQLite file (WAL mode) or a postgres:// URL", NULL},
    {"actors-db", "BARISTA_ACTORS_DB", OPT_TEXT, F(actors_db), 0, 0,
     "keyed actors' state: a SQLite file (WAL mode) or a postgres:// URL (shareable)", NULL},
    {"actor-idle", "BARISTA_ACTOR_IDLE", OPT_DURATION, F(broker.actor_idle_ms), 1, 24 * HOUR_MS,
     "an actor without a message this long is deactivated (its type may say otherwise)", NULL},
    {"jobs-fsync", "BARISTA_JOBS_FSYNC", OPT_COUNT, F(jobs.fsync), 0, 1,
     "1: fsync each group commit, surviving power loss; 0: survives process kills", NULL},
    {"jobs-retention", "BARISTA_JOBS_RETENTION", OPT_DURATION, F(jobs.retention_ms), 1,
     720 * HOUR_MS, "finished jobs are deleted this long after they end", NULL},
    {"jobs-max-attempts", "BARISTA_JOBS_MAX_ATTEMPTS", OPT_COUNT, F(jobs.max_attempts), 1, 1000,
     "runs of a failing job before it is dead", NULL},
    {"jobs-lease", "BARISTA_JOBS_LEASE", OPT_DURATION, F(jobs.lease_ms), 10, 24 * HOUR_MS,
     "a job without a result this long after it was sent runs again", NULL},
    {"jobs-backoff", "BARISTA_JOBS_BACKOFF", OPT_DURATION, F(jobs.backoff_ms), 1, HOUR_MS,
     "first retry delay of a failed job; doubles per attempt, with jitter", NULL},
    {"jobs-backoff-cap", "BARISTA_JOBS_BACKOFF_CAP", OPT_DURATION, F(jobs.backoff_cap_ms), 1,
     24 * HOUR_MS, "longest retry delay", NULL},
    {"jobs-task-limit", "BARISTA_JOBS_TASK_LIMIT", OPT_COUNT, F(jobs.task_limit), 1, 1000000,
     "unfinished jobs per task (503 + Retry-After beyond)", NULL},
    {"jobs-memory", "BARISTA_JOBS_MEMORY", OPT_SIZE, F(jobs.memory), 32 * MIB,
     (uint64_t)64 * 1024 * MIB,
     "job payload and result bytes held in memory; the rest waits "
     "in the store",
     NULL},
    {"jobs-task-bytes", "BARISTA_JOBS_TASK_BYTES", OPT_SIZE, F(jobs.task_bytes), MIB,
     (uint64_t)1024 * 1024 * MIB, "payload bytes of one task's unfinished jobs (503 beyond)", NULL},
    {"jobs-task-grace", "BARISTA_JOBS_TASK_GRACE", OPT_DURATION, F(jobs.task_grace_ms), 1,
     24 * HOUR_MS, "a task whose last worker left stays submittable this long, then retires", NULL},
    {"jobs-gateway-lease", "BARISTA_JOBS_GATEWAY_LEASE", OPT_DURATION, F(jobs.gateway_lease_ms),
     1000, HOUR_MS,
     "PostgreSQL queue: a gateway silent this long is dead and another adopts its jobs", NULL},
    {"curve-secret-key-file", "BARISTA_CURVE_SECRET_KEY_FILE", OPT_PATH, F(curve_secret_key_file),
     0, 0, "broker's CURVE key pair: workers must authenticate", NULL},
    {"curve-authorized-keys", "BARISTA_CURVE_AUTHORIZED_KEYS", OPT_PATH, F(curve_authorized_keys),
     0, 0, "worker public keys allowed to register (file or dir)", NULL},
    {"curve-watch", "BARISTA_CURVE_WATCH", OPT_COUNT, F(curve_watch), 0, 1,
     "1: reload the authorised worker keys when they change on disk (as SIGHUP does)", NULL},
    {"shutdown-timeout", "BARISTA_SHUTDOWN_TIMEOUT", OPT_DURATION, F(shutdown_timeout_ms), 1,
     HOUR_MS, "on SIGTERM/SIGINT, how long in-flight requests may finish", NULL},
    {"log-level", "BARISTA_LOG_LEVEL", OPT_CHOICE, F(log_level), 0, 0,
     "log lines below this level are dropped", gw_log_level_names},
    {"log-format", "BARISTA_LOG_FORMAT", OPT_CHOICE, F(log_json), 0, 0,
     "log lines as text (\"LEVEL component: message\") or json (one object each)", log_formats},
    {"access-log", "BARISTA_ACCESS_LOG", OPT_TEXT, F(access_log), 0, 0,
     "access log: - (stderr), a file (reopened on SIGHUP) or off", NULL},
    {"access-log-format", "BARISTA_ACCESS_LOG_FORMAT", OPT_CHOICE, F(access_log_json), 0, 0,
     "access log lines: common (common log + extras) or json", access_formats},
    {"access-log-sample", "BARISTA_ACCESS_LOG_SAMPLE", OPT_COUNT, F(access_log_sample), 1, 1000000,
     "log 1 in N answers below 400 (errors always)", NULL},
    {"cors-origins", "BARISTA_CORS_ORIGINS", OPT_PATH, F(cors_origins), 0, 0,
     "CORS: allowed origins, comma-separated, or *; none: CORS off", NULL},
    {"cors-methods", "BARISTA_CORS_METHODS", OPT_TEXT, F(cors_methods), 0, 0,
     "CORS: methods a preflight may ask for", NULL},
    {"cors-headers", "BARISTA_CORS_HEADERS", OPT_TEXT, F(cors_headers), 0, 0,
     "CORS: request headers a preflight may ask for, or *", NULL},
    {"cors-expose", "BARISTA_CORS_EXPOSE", OPT_PATH, F(cors_expose), 0, 0,
     "CORS: response headers a page may read", NULL},
    {"cors-credentials", "BARISTA_CORS_CREDENTIALS", OPT_FLAG, F(cors_credentials), 0, 1,
     "CORS: allow credentials (cookies, Authorization)", NULL},
    {"cors-max-age", "BARISTA_CORS_MAX_AGE", OPT_COUNT, F(cors_max_age_s), 0, 86400,
     "CORS: seconds a browser may cache a preflight", NULL},
    {"compress", "BARISTA_COMPRESS", OPT_FLAG, F(compress), 0, 1,
     "compress answers with gzip or brotli as Accept-Encoding allows (0: never)", NULL},
    {"compress-min-bytes", "BARISTA_COMPRESS_MIN_BYTES", OPT_SIZE, F(compress_min_bytes), 0,
     16 * MIB, "smaller answer bodies are sent as they are", NULL},
    {"gzip-level", "BARISTA_GZIP_LEVEL", OPT_COUNT, F(gzip_level), 1, 9, "gzip compression level",
     NULL},
    {"brotli-quality", "BARISTA_BROTLI_QUALITY", OPT_COUNT, F(brotli_quality), 0, 11,
     "brotli compression quality", NULL},
    {"max-inflated-bytes", "BARISTA_MAX_INFLATED_BYTES", OPT_SIZE, F(max_inflated_bytes), 1,
     64 * MIB, "a gzip request body inflating past this is refused (413)", NULL},
    {"auth-default", "BARISTA_AUTH_DEFAULT", OPT_CHOICE, F(auth_default), 0, 0,
     "authentication of routes that declare none", auth_modes},
    {"jwt-secret-file", "BARISTA_JWT_SECRET_FILE", OPT_PATH, F(jwt_secret_file), 0, 0,
     "JWT: HS256 shared secret (the file's bytes)", NULL},
    {"jwt-public-key-file", "BARISTA_JWT_PUBLIC_KEY_FILE", OPT_PATH, F(jwt_public_key_file), 0, 0,
     "JWT: PEM public key, RSA (RS256) or EC P-256 (ES256)", NULL},
    {"jwks-file", "BARISTA_JWKS_FILE", OPT_PATH, F(jwks_file), 0, 0,
     "JWT: a JWKS document; keys picked by the token's kid", NULL},
    {"jwt-issuer", "BARISTA_JWT_ISSUER", OPT_PATH, F(jwt_issuer), 0, 0, "JWT: required iss claim",
     NULL},
    {"jwt-audience", "BARISTA_JWT_AUDIENCE", OPT_PATH, F(jwt_audience), 0, 0,
     "JWT: required aud claim", NULL},
    {"jwt-leeway", "BARISTA_JWT_LEEWAY", OPT_DURATION, F(jwt_leeway_ms), 0, HOUR_MS,
     "JWT: clock skew allowed on exp and nbf", NULL},
    {"api-keys-file", "BARISTA_API_KEYS_FILE", OPT_PATH, F(api_keys_file), 0, 0,
     "API keys, hashed: lines \"NAME SHA256-HEX [SCOPE...]\"", NULL},
    {"rate-limit-ip", "BARISTA_RATE_LIMIT_IP", OPT_COUNT, F(rate_ip), 0, 10000000,
     "requests per second per client address, per gateway process (0: off)", NULL},
    {"rate-limit-key", "BARISTA_RATE_LIMIT_KEY", OPT_COUNT, F(rate_key), 0, 10000000,
     "requests per second per authenticated subject or API key (0: off)", NULL},
    {"rate-limit-route", "BARISTA_RATE_LIMIT_ROUTE", OPT_COUNT, F(rate_route), 0, 10000000,
     "requests per second per route, all clients together (0: off)", NULL},
    {"rate-limit-burst", "BARISTA_RATE_LIMIT_BURST", OPT_COUNT, F(rate_burst), 1, 1000,
     "token bucket size as a multiple of the rate", NULL},
    {"trusted-proxies", "BARISTA_TRUSTED_PROXIES", OPT_PATH, F(trusted_proxies), 0, 0,
     "addresses/CIDRs whose X-Forwarded-For and Forwarded are believed", NULL},
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

/* Writes the option's current value as it would be given ("8k", "10s", "info"). */
static void format_value(const opt *o, const gw_config *cfg, char *buf, size_t cap)
{
    const char *field = (const char *)cfg + o->offset;
    size_t size;
    uint32_t u;
    switch (o->kind) {
    case OPT_ADDR:
    case OPT_TEXT:
    case OPT_PATH:
        snprintf(buf, cap, "%s", field[0] ? field : "none");
        return;
    case OPT_SIZE:
        memcpy(&size, field, sizeof(size));
        if (size && size % MIB == 0)
            snprintf(buf, cap, "%zum", size / MIB);
        else if (size && size % KIB == 0)
            snprintf(buf, cap, "%zuk", size / KIB);
        else
            snprintf(buf, cap, "%zu", size);
        return;
    default:
        break;
    }
    memcpy(&u, field, sizeof(u));
    if (o->kind == OPT_DURATION && u % 1000 == 0)
        snprintf(buf, cap, "%us", u / 1000);
    else if (o->kind == OPT_DURATION)
        snprintf(buf, cap, "%ums", u);
    else if (o->kind == OPT_CHOICE)
        snprintf(buf, cap, "%s", o->choices[u]);
    else
        snprintf(buf, cap, "%u", u);
}

void gw__config_defaults(gw_config *cfg)
{
    *cfg = (gw_config){
        .listen = GW_CONFIG_LISTEN,
        .shutdown_timeout_ms = GW_CONFIG_SHUTDOWN_TIMEOUT_MS,
        .broker_endpoint = GW_CONFIG_BROKER_AUTO,
        .local = 0,
        .io_workers = GW_CONFIG_IO_WORKERS,
        .cpu_workers = GW_CONFIG_CPU_WORKERS,
        .io_services = GW_CONFIG_IO_SERVICES,
        .cpu_services = GW_CONFIG_CPU_SERVICES,
        .worker_bin = GW_CONFIG_WORKER_BIN,
        .jobs_db = GW_JOBS_DB,
        .actors_db = GW_ACTORS_DB,
        .processes = GW_CONFIG_PROCESSES,
        .curve_watch = GW_CONFIG_CURVE_WATCH,
        .log_level = GW_LOG_DEFAULT_LEVEL,
        .log_json = GW_LOG_DEFAULT_JSON,
        .access_log = GW_EDGE_ACCESS_LOG,
        .access_log_json = GW_EDGE_ACCESS_LOG_JSON,
        .access_log_sample = GW_EDGE_ACCESS_LOG_SAMPLE,
        .cors_methods = GW_EDGE_CORS_METHODS,
        .cors_headers = GW_EDGE_CORS_HEADERS,
        .cors_max_age_s = GW_EDGE_CORS_MAX_AGE_S,
        .compress = GW_EDGE_COMPRESS,
        .compress_min_bytes = GW_EDGE_COMPRESS_MIN_BYTES,
        .gzip_level = GW_EDGE_GZIP_LEVEL,
        .brotli_quality = GW_EDGE_BROTLI_QUALITY,
        .max_inflated_bytes = GW_EDGE_MAX_INFLATED_BYTES,
        .auth_default = GW_EDGE_AUTH_DEFAULT - 1,
        .jwt_leeway_ms = GW_EDGE_JWT_LEEWAY_S * 1000,
        .rate_burst = GW_EDGE_RATE_BURST_FACTOR,
    };
    gw_http_config_defaults(&cfg->http);
    gw_broker_config_defaults(&cfg->broker);
    gw_jobs_config_defaults(&cfg->jobs);
    gw_ws_config_defaults(&cfg->ws);
    cfg->ws_deflate = cfg->ws.deflate ? 1 : 0;
    cfg->broker_retry = cfg->broker.retry_idempotent;
    cfg->worker_header = cfg->broker.worker_header;
    /* Cannot fail: a constant, which test_config checks. */
    (void)gw__config_parse_addr(cfg->listen, &cfg->listen_addr);
}

void gw__config_edge(const gw_config *cfg, gw_edge_config *out)
{
    gw_edge_config_defaults(out);
    out->access_log = cfg->access_log;
    out->access_log_json = cfg->access_log_json != 0;
    out->access_log_sample = cfg->access_log_sample;
    out->cors_origins = cfg->cors_origins;
    out->cors_methods = cfg->cors_methods;
    out->cors_headers = cfg->cors_headers;
    out->cors_expose = cfg->cors_expose;
    out->cors_credentials = cfg->cors_credentials != 0;
    out->cors_max_age_s = cfg->cors_max_age_s;
    out->compress = cfg->compress != 0;
    out->compress_min_bytes = cfg->compress_min_bytes;
    out->gzip_level = cfg->gzip_level;
    out->brotli_quality = cfg->brotli_quality;
    out->max_inflated_bytes = cfg->max_inflated_bytes;
    out->auth_default = (uint8_t)(cfg->auth_default + 1);
    out->jwt_secret_file = cfg->jwt_secret_file;
    out->jwt_public_key_file = cfg->jwt_public_key_file;
    out->jwks_file = cfg->jwks_file;
    out->jwt_issuer = cfg->jwt_issuer;
    out->jwt_audience = cfg->jwt_audience;
    out->jwt_leeway_s = cfg->jwt_leeway_ms / 1000;
    out->api_keys_file = cfg->api_keys_file;
    out->rate_ip = cfg->rate_ip;
    out->rate_key = cfg->rate_key;
    out->rate_route = cfg->rate_route;
    out->rate_burst_factor = cfg->rate_burst;
    out->trusted_proxies = cfg->trusted_proxies;
}

void gw__config_usage(FILE *out)
{
    gw_config d;
    gw__config_defaults(&d);
    fputs("usage: barista-gateway [OPTION VALUE]...\n\n"
          "Barista's gateway: HTTP/1.1 front, router and broker.  Every option is also an\n"
          "environment variable; a flag wins over its variable.  Sizes take k/m suffixes\n"
          "(KiB/MiB); durations take ms/s/m (a bare number is seconds).\n\n",
          out);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt *o = &options[i];
        char def[GW_CONFIG_MAX_ADDR];
        format_value(o, &d, def, sizeof(def));
        fprintf(out, "  --%-20s %s\n  %-22s default %s; env %s\n", o->name, o->help, "", def,
                o->env);
    }
    fputs("  --help                 print this and exit\n", out);
}

int gw__config_parse_addr(const char *text, struct sockaddr_storage *out)
{
    char host[GW_CONFIG_MAX_ADDR];
    const char *colon;
    size_t hlen;
    if (!text || strlen(text) >= sizeof(host))
        return BR_EINVAL;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':')
            return BR_EINVAL;
        hlen = (size_t)(end - text - 1);
        memcpy(host, text + 1, hlen);
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return BR_EINVAL;
        hlen = (size_t)(colon - text);
        memcpy(host, text, hlen);
    }
    host[hlen] = '\0';
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port > 65535 || !isdigit((unsigned char)colon[1]))
        return BR_EINVAL;
    memset(out, 0, sizeof(*out));
    if (text[0] == '[')
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0 ? 0 : BR_EINVAL;
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ? 0 : BR_EINVAL;
}

/* Parses an unsigned number with an optional unit from `units` (suffix, multiplier);
 * a bare number takes bare_mult.  Returns 0 or BR_EINVAL. */
static int parse_scaled(const char *text, const char *const *units, const uint64_t *mults,
                        size_t nunits, uint64_t bare_mult, uint64_t *out)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return BR_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno)
        return BR_EINVAL;
    uint64_t mult = bare_mult;
    if (*end) {
        size_t i = 0;
        while (i < nunits && strcmp(end, units[i]) != 0)
            i++;
        if (i == nunits)
            return BR_EINVAL;
        mult = mults[i];
    }
    if (mult && v > UINT64_MAX / mult)
        return BR_EINVAL;
    *out = v * mult;
    return 0;
}

static int parse_value(const opt *o, const char *text, gw_config *cfg)
{
    static const char *const size_units[] = {"k", "K", "m", "M"};
    static const uint64_t size_mults[] = {KIB, KIB, MIB, MIB};
    static const char *const time_units[] = {"ms", "s", "m"};
    static const uint64_t time_mults[] = {1, 1000, 60000};
    char *field = (char *)cfg + o->offset;
    uint64_t v = 0;
    int rc;
    switch (o->kind) {
    case OPT_ADDR:
        if (gw__config_parse_addr(text, &cfg->listen_addr) != 0)
            return BR_EINVAL;
        memcpy(field, text, strlen(text) + 1);
        return 0;
    case OPT_FLAG:
        if (strcmp(text, "1") == 0 || strcmp(text, "true") == 0 || strcmp(text, "yes") == 0)
            v = 1;
        else if (strcmp(text, "0") != 0 && strcmp(text, "false") != 0 && strcmp(text, "no") != 0)
            return BR_EINVAL;
        memcpy(field, &(uint32_t){(uint32_t)v}, sizeof(uint32_t));
        return 0;
    case OPT_CHOICE:
        while (o->choices[v] && strcmp(text, o->choices[v]) != 0)
            v++;
        if (!o->choices[v])
            return BR_EINVAL;
        memcpy(field, &(uint32_t){(uint32_t)v}, sizeof(uint32_t));
        return 0;
    case OPT_PATH:
    case OPT_TEXT:
        if ((o->kind == OPT_TEXT && strlen(text) == 0) || strlen(text) >= GW_CONFIG_MAX_ADDR)
            return BR_EINVAL;
        memcpy(field, text, strlen(text) + 1);
        return 0;
    case OPT_SIZE:
        rc = parse_scaled(text, size_units, size_mults, 4, 1, &v);
        break;
    case OPT_DURATION:
        rc = parse_scaled(text, time_units, time_mults, 3, 1000, &v);
        break;
    default:
        rc = parse_scaled(text, NULL, NULL, 0, 1, &v);
        break;
    }
    if (rc != 0 || v < o->min || v > o->max)
        return BR_EINVAL;
    if (o->kind == OPT_SIZE) {
        size_t s = (size_t)v;
        memcpy(field, &s, sizeof(s));
    } else {
        uint32_t u = (uint32_t)v;
        memcpy(field, &u, sizeof(u));
    }
    return 0;
}

/* "a, b or c" from a NULL-terminated list of words. */
static void join_choices(const char *const *words, char *buf, size_t cap)
{
    size_t n = 0, used = 0;
    while (words[n])
        n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + used, cap - used, "%s%s", sep, words[i]);
        if (w < 0)
            return;
        used += (size_t)w;
    }
}

static void report_bad(FILE *err, const opt *o, const char *source, const char *value)
{
    char words[128];
    if (o->kind == OPT_CHOICE) {
        join_choices(o->choices, words, sizeof(words));
        fprintf(err, "barista-gateway: %s: bad value \"%s\" (want %s)\n", source, value, words);
    } else if (o->kind == OPT_FLAG)
        fprintf(err, "barista-gateway: %s: bad value \"%s\" (want 1 or 0)\n", source, value);
    else if (o->kind == OPT_TEXT || o->kind == OPT_PATH)
        fprintf(err, "barista-gateway: %s: bad value \"%s\" (want %d..%d characters)\n", source,
                value, o->kind == OPT_TEXT, GW_CONFIG_MAX_ADDR - 1);
    else if (o->kind == OPT_ADDR)
        fprintf(err, "barista-gateway: %s: bad value \"%s\" (want HOST:PORT or [IPV6]:PORT)\n",
                source, value);
    else
        fprintf(err, "barista-gateway: %s: bad value \"%s\" (want %llu..%llu%s)\n", source, value,
                (unsigned long long)o->min, (unsigned long long)o->max,
                o->kind == OPT_SIZE       ? " bytes, k/m suffix"
                : o->kind == OPT_DURATION ? " ms, unit ms/s/m"
                                          : "");
}

static const opt *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

/* Resolves --broker auto outside local mode, and refuses an endpoint that other hosts
 * can reach while CURVE is off unless --insecure-broker says it is meant. */
static gw_config_result check_broker(gw_config *cfg, FILE *err)
{
    bool automatic = strcmp(cfg->broker_endpoint, GW_CONFIG_BROKER_AUTO) == 0;
    if (automatic && !cfg->local) {
        snprintf(cfg->broker_endpoint, sizeof(cfg->broker_endpoint), "%s", GW_BROKER_ENDPOINT);
        automatic = false;
    }
    bool curve = cfg->curve_secret_key_file[0] && cfg->curve_authorized_keys[0];
    if (automatic || curve || cfg->insecure_broker ||
        gw_broker_endpoint_local(cfg->broker_endpoint))
        return GW_CONFIG_RUN;
    fprintf(err,
            "barista-gateway: broker endpoint %s is reachable from other hosts and worker "
            "authentication is off: give --curve-secret-key-file and --curve-authorized-keys, "
            "bind a loopback or ipc:// endpoint, or pass --insecure-broker if any process "
            "that reaches it may serve your routes\n",
            cfg->broker_endpoint);
    return GW_CONFIG_BAD;
}

gw_config_result gw__config_load(gw_config *cfg, int argc, char **argv, FILE *err)
{
    gw__config_defaults(cfg);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const char *v = getenv(options[i].env);
        if (v && parse_value(&options[i], v, cfg) != 0) {
            report_bad(err, &options[i], options[i].env, v);
            return GW_CONFIG_BAD;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            gw__config_usage(stdout);
            return GW_CONFIG_HELP;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(err, "barista-gateway: unexpected argument \"%s\" (see --help)\n", arg);
            return GW_CONFIG_BAD;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        const opt *o = find_option(name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o) {
            fprintf(err, "barista-gateway: unknown option \"%s\" (see --help)\n", arg);
            return GW_CONFIG_BAD;
        }
        const char *value = eq                    ? eq + 1
                            : o->kind == OPT_FLAG ? "1"
                                                  : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) {
            fprintf(err, "barista-gateway: option --%s needs a value\n", o->name);
            return GW_CONFIG_BAD;
        }
        if (parse_value(o, value, cfg) != 0) {
            report_bad(err, o, arg, value);
            return GW_CONFIG_BAD;
        }
    }
    return check_broker(cfg, err);
}

/* tcp://HOST:PORT with PORT + index, or ipc://PATH + "." + index, into out.  0 or
 * BR_EINVAL. */
static int process_endpoint(const char *base, unsigned index, char *out, size_t cap)
{
    if (strncmp(base, "ipc://", 6) == 0)
        return (size_t)snprintf(out, cap, "%s.%u", base, index) < cap ? 0 : BR_EINVAL;
    const char *colon = strrchr(base, ':');
    if (strncmp(base, "tcp://", 6) != 0 || !colon)
        return BR_EINVAL;
    /* "*": ZeroMQ picks a free port for each process. */
    if (strcmp(colon, ":*") == 0)
        return (size_t)snprintf(out, cap, "%s", base) < cap ? 0 : BR_EINVAL;
    if (!isdigit((unsigned char)colon[1]))
        return BR_EINVAL;
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || *end || port == 0 || port + index > 65535)
        return BR_EINVAL;
    int n = snprintf(out, cap, "%.*s:%lu", (int)(colon - base), base, port + index);
    return n >= 0 && (size_t)n < cap ? 0 : BR_EINVAL;
}

int gw__config_for_process(gw_config *cfg, unsigned index, FILE *err)
{
    cfg->http.reuse_port = true;
    memcpy(cfg->process_base, cfg->broker_endpoint, sizeof(cfg->process_base));
    if (index == 0)
        return 0;
    bool automatic = strcmp(cfg->broker_endpoint, GW_CONFIG_BROKER_AUTO) == 0;
    char endpoint[GW_CONFIG_MAX_ADDR];
    if (!automatic) {
        if (process_endpoint(cfg->broker_endpoint, index, endpoint, sizeof(endpoint)) != 0) {
            fprintf(err,
                    "barista-gateway: --processes: no broker endpoint for process %u from %s "
                    "(want tcp://HOST:PORT with PORT + %u <= 65535, or ipc://PATH)\n",
                    index, cfg->broker_endpoint, index);
            return BR_EINVAL;
        }
        memcpy(cfg->broker_endpoint, endpoint, sizeof(endpoint));
    }
    /* Processes share a PostgreSQL queue (each a gateway with its own lease, docs/jobs.md);
     * a SQLite file is one process's, so each gets its own. */
    if (strncmp(cfg->jobs_db, "postgres://", 11) == 0 ||
        strncmp(cfg->jobs_db, "postgresql://", 13) == 0)
        return 0;
    char db[GW_CONFIG_MAX_ADDR];
    if ((size_t)snprintf(db, sizeof(db), "%s.%u", cfg->jobs_db, index) >= sizeof(db)) {
        fprintf(err, "barista-gateway: --processes: --jobs-db %s is too long\n", cfg->jobs_db);
        return BR_EINVAL;
    }
    memcpy(cfg->jobs_db, db, sizeof(db));
    return 0;
}

int gw__config_process_endpoint(const gw_config *cfg, unsigned index, char *out, size_t cap)
{
    const char *base = cfg->process_base;
    if (!base[0] || strcmp(base, GW_CONFIG_BROKER_AUTO) == 0 || index >= cfg->processes)
        return BR_EINVAL;
    const char *colon = strrchr(base, ':');
    if (colon && strcmp(colon, ":*") == 0)
        return BR_EINVAL;
    if (index == 0)
        return (size_t)snprintf(out, cap, "%s", base) < cap ? 0 : BR_EINVAL;
    return process_endpoint(base, index, out, cap);
}
