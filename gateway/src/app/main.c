/*
 * main.c - barista-gateway: options, the one loop, and the components on it.
 *
 * The gateway is a context struct holding the loop and every component; main()
 * builds it, runs the loop until SIGTERM/SIGINT has drained everything, and checks
 * that the loop closed with nothing left open.  gateway_start() builds the router,
 * the broker, the job queue and the HTTP front, binds the broker, starts the local
 * workers (--local), then listens; a stop signal takes them down in the order the
 * on_*_stopped/closed callbacks chain: HTTP front, broker, job store, local workers.
 * SIGHUP reloads the authorised worker certificates (CURVE), and so does a change in
 * their directory (keywatch.h) unless --curve-watch 0.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#include "actors.h"
#include "broker.h"
#include "config.h"
#include "edge.h"
#include "http.h"
#include "http_server.h"
#include "introspection.h"
#include "jobs.h"
#include "keywatch.h"
#include "log.h"
#include "router.h"
#include "routes.h"
#include "supervisor.h"
#include "zap.h"

typedef struct gateway {
    uv_loop_t loop;            /* the process's one event loop */
    gw_config cfg;             /* options */
    gw_router *router;         /* method + path -> handler; gateway routes and workers' */
    gw_http_server *http;      /* the HTTP/1.1 front */
    uv_signal_t sigterm;       /* graceful stop */
    uv_signal_t sigint;        /* graceful stop (Ctrl-C) */
    uv_signal_t sighup;        /* reopen the access log, reload the worker certificates */
    gw_edge *edge;             /* request ids, access log, CORS, compression, auth, limits */
    bool stopping;             /* a stop signal arrived */
    gw_broker *broker;         /* workers' ROUTER: registration, dispatch, replies */
    gw_supervisor *supervisor; /* local mode: the worker processes; NULL otherwise */
    gw_jobs *jobs;             /* durable job queue and its store */
    gw_actors *actors;         /* keyed actors' state store */
    gw_introspection intro;    /* what /metrics and /openapi.json read */
    gw_curve curve;            /* worker authentication keys; curve.on false when off */
    gw_keywatch *keywatch;     /* reloads them when their directory changes; or NULL */
    bool keys_again;           /* a reload was asked for while one ran: another follows */
    char ipc_dir[96];          /* local mode's private directory for the broker's ipc://
                                  socket (removed at exit); "" when none */
} gateway;

/* GET /readyz: 200 while every current service has a live worker (services gone
 * past --service-grace are retired and no longer count), else 503. */
static void readyz(gw_req *req, void *data)
{
    static const gw_header retry = {"Retry-After", 11, "1", 1};
    static const char ok[] = "{\"status\":\"ready\"}";
    static const char no[] = "{\"detail\":\"Not ready: a service has no live worker\"}";
    if (gw_broker_ready(data))
        gw_req_respond(req, 200, NULL, 0, "application/json", ok, sizeof(ok) - 1);
    else
        gw_req_respond(req, 503, &retry, 1, "application/json", no, sizeof(no) - 1);
}

static void on_jobs_closed(void *arg)
{
    gateway *gw = arg;
    gw_edge_close(gw->edge);
    /* Workers were told GOODBYE and hold no request of ours: stop local ones. */
    if (gw->supervisor)
        gw_supervisor_shutdown(gw->supervisor, gw->cfg.shutdown_timeout_ms, NULL, NULL);
}

/* GET /actorz: the actor placement summary (services, workers, active keys). */
static void actorz(gw_req *req, void *data)
{
    br_buf out = {.max = 16u * 1024u * 1024u};
    if (gw_broker_actors_json(data, &out) != 0)
        gw_req_respond_error(req, 500, false, "Internal Server Error");
    else
        gw_req_respond(req, 200, NULL, 0, "application/json", out.data, out.len);
    br_buf_free(&out);
}

static void on_actors_closed(void *arg)
{
    gateway *gw = arg;
    /* No JOB_RESULT can arrive any more: write what is pending and close the store. */
    gw_jobs_shutdown(gw->jobs, on_jobs_closed, gw);
}

static void on_broker_stopped(void *arg)
{
    gateway *gw = arg;
    /* Commits under way finish (their clients were answered already). */
    gw_actors_shutdown(gw->actors, on_actors_closed, gw);
}

static void on_http_stopped(void *arg)
{
    gateway *gw = arg;
    /* After the HTTP front stopped handing it requests: GOODBYE to workers. */
    gw_broker_shutdown(gw->broker, on_broker_stopped, gw);
}

/* Finds the worker program: an explicit path as given, a bare name beside our own
 * executable (build/bin/ and an installed bin/ alike).  Returns 0 or -1. */
static int resolve_worker_bin(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/')) {
        if ((size_t)snprintf(out, cap, "%s", name) >= cap)
            return -1;
        return 0;
    }
    char self[4096];
    size_t len = sizeof(self);
    if (uv_exepath(self, &len) != 0)
        return -1;
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    if ((size_t)snprintf(out, cap, "%s/%s", self, name) >= cap)
        return -1;
    return 0;
}

/* A bound endpoint as a local worker reaches it: a wildcard host ("tcp://0.0.0.0:5555",
 * "tcp://[::]:5555") replaced by loopback.  0 or -1. */
static int loopback_endpoint(const char *bound, char *out, size_t cap)
{
    static const struct {
        const char *any, *loopback;
    } wild[] = {{"tcp://0.0.0.0:", "tcp://127.0.0.1:"}, {"tcp://[::]:", "tcp://[::1]:"}};
    for (size_t i = 0; i < sizeof(wild) / sizeof(wild[0]); i++) {
        size_t n = strlen(wild[i].any);
        if (strncmp(bound, wild[i].any, n) == 0)
            return (size_t)snprintf(out, cap, "%s%s", wild[i].loopback, bound + n) < cap ? 0 : -1;
    }
    return (size_t)snprintf(out, cap, "%s", bound) < cap ? 0 : -1;
}

/* The endpoints local workers register with (comma-separated): the one our broker
 * bound first, then, under --processes N with a known endpoint per process, every
 * other process's, in turn from ours - so that the workers of every process serve all
 * of them, and a worker with one slot prefers its own process (docs/workers.md,
 * "Several brokers").  0 or -1. */
static int local_connect_endpoints(const gateway *gw, char *out, size_t cap)
{
    char bound[GW_CONFIG_MAX_ADDR], own[GW_CONFIG_MAX_ADDR], each[GW_CONFIG_MAX_ADDR];
    if (gw_broker_endpoint(gw->broker, bound, sizeof(bound)) != 0 ||
        loopback_endpoint(bound, out, cap) != 0)
        return -1;
    unsigned n = gw->cfg.processes, me = n;
    for (unsigned i = 0; i < n && me == n; i++)
        if (gw__config_process_endpoint(&gw->cfg, i, own, sizeof(own)) == 0 &&
            strcmp(own, gw->cfg.broker_endpoint) == 0)
            me = i;
    if (me == n)
        return 0; /* one process, or endpoints only each process knows: ours alone */
    for (unsigned k = 1; k < n; k++) {
        size_t len = strlen(out);
        if (gw__config_process_endpoint(&gw->cfg, (me + k) % n, own, sizeof(own)) != 0 ||
            loopback_endpoint(own, each, sizeof(each)) != 0 ||
            (size_t)snprintf(out + len, cap - len, ",%s", each) >= cap - len)
            return -1;
    }
    return 0;
}

/* Local mode: spawns the configured I/O and CPU workers, pointed at our broker. */
static int start_local_workers(gateway *gw)
{
    char bin[4096 + GW_CONFIG_MAX_ADDR];
    char endpoint[GW_CONFIG_MAX_ADDR * GW_CONFIG_MAX_PROCESSES];
    static const char *const env[] = {"BARISTA_EXIT_WITH_PARENT=1", NULL};

    if (resolve_worker_bin(gw->cfg.worker_bin, bin, sizeof(bin)) != 0 || access(bin, X_OK) != 0) {
        gw_log(GW_LOG_ERROR, "gateway", "--local: worker program %s not found", gw->cfg.worker_bin);
        return -1;
    }
    if (local_connect_endpoints(gw, endpoint, sizeof(endpoint)) != 0) {
        gw_log(GW_LOG_ERROR, "gateway", "--local: cannot tell workers where the broker is");
        return -1;
    }
    gw->supervisor = gw_supervisor_new(&gw->loop);
    if (!gw->supervisor) {
        gw_log(GW_LOG_ERROR, "gateway", "--local: out of memory");
        return -1;
    }
    /* With CURVE on, local workers hold the gateway's own key pair, authorised below:
     * they run as us and could read the file anyway. */
    const char *io[] = {bin,         "--services", gw->cfg.io_services,
                        "--connect", endpoint,     "--prefer-first-broker",
                        NULL,        NULL,         NULL,
                        NULL,        NULL};
    const char *cpu[] = {bin,         "--services", gw->cfg.cpu_services,
                         "--connect", endpoint,     "--prefer-first-broker",
                         NULL,        NULL,         NULL,
                         NULL,        NULL};
    if (gw->curve.on) {
        const char *keys[] = {"--curve-server-key", gw->curve.server.public_key,
                              "--curve-secret-key-file", gw->cfg.curve_secret_key_file};
        memcpy(&io[6], keys, sizeof(keys));
        memcpy(&cpu[6], keys, sizeof(keys));
        if (gw_curve_authorise_self(&gw->curve) != 0) {
            gw_log(GW_LOG_ERROR, "gateway", "--local: cannot authorise local workers");
            return -1;
        }
    }
    if (gw->cfg.io_workers > 0 &&
        gw_supervisor_add(gw->supervisor, "io-worker", io, env, gw->cfg.io_workers) != 0)
        return -1;
    if (gw->cfg.cpu_workers > 0 &&
        gw_supervisor_add(gw->supervisor, "cpu-worker", cpu, env, gw->cfg.cpu_workers) != 0)
        return -1;
    gw_log(GW_LOG_INFO, "gateway", "local mode: %u io-worker (%s), %u cpu-worker (%s)",
           gw->cfg.io_workers, gw->cfg.io_services, gw->cfg.cpu_workers, gw->cfg.cpu_services);
    return 0;
}

static void reload_keys(gateway *gw, const char *why);

/* A reload of the authorised certificates finished: workers whose key was withdrawn
 * leave, and a reload asked for meanwhile starts (it may see newer files). */
static void on_keys_reloaded(void *arg, int rc)
{
    gateway *gw = arg;
    if (gw->stopping)
        return;
    if (rc == 0)
        gw_broker_keys_changed(gw->broker);
    if (gw->keys_again) {
        gw->keys_again = false;
        reload_keys(gw, "changed during the last reload");
    }
}

/* Reads the authorised certificates again (SIGHUP, or their directory changed);
 * `why` says which in the log. */
static void reload_keys(gateway *gw, const char *why)
{
    int rc = gw_curve_reload(&gw->curve, &gw->loop, on_keys_reloaded, gw);
    if (rc == 0)
        gw_log(GW_LOG_INFO, "gateway", "%s: reloading the authorised worker keys from %s", why,
               gw->curve.authorized);
    else if (rc == BR_EFULL)
        gw->keys_again = true; /* on_keys_reloaded starts it */
}

/* SIGHUP, as daemons take it: reopen the access log file (logrotate has moved it) and
 * reload the authorised worker certificates. */
static void on_sighup(uv_signal_t *sig, int signum)
{
    gateway *gw = sig->data;
    (void)signum;
    gw_edge_reopen(gw->edge);
    if (!gw->curve.on) {
        gw_log(GW_LOG_INFO, "gateway",
               "SIGHUP: access log reopened; worker authentication is "
               "off, no keys to reload");
        return;
    }
    reload_keys(gw, "SIGHUP");
}

static void on_keys_changed(void *arg)
{
    gateway *gw = arg;
    if (!gw->stopping)
        reload_keys(gw, "the authorised keys changed");
}

/* Local mode with --broker auto: a directory only we can enter (mkdtemp makes it 0700)
 * for the broker's ipc:// socket, so that no other local user can reach the broker.
 * 0 or -1 (logged). */
static int make_ipc_endpoint(gateway *gw)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0] || strlen(tmp) > 64)
        tmp = "/tmp";
    snprintf(gw->ipc_dir, sizeof(gw->ipc_dir), "%s/barista-XXXXXX", tmp);
    if (!mkdtemp(gw->ipc_dir)) {
        gw_log(GW_LOG_ERROR, "gateway", "mkdtemp(%s) for the broker's ipc socket failed: %s",
               gw->ipc_dir, strerror(errno));
        gw->ipc_dir[0] = '\0';
        return -1;
    }
    snprintf(gw->cfg.broker_endpoint, sizeof(gw->cfg.broker_endpoint), "ipc://%s/broker",
             gw->ipc_dir);
    return 0;
}

/* Removes the ipc socket's private directory (libzmq removes the socket file when it
 * closes the listener; unlink it anyway after a failed start). */
static void remove_ipc_dir(gateway *gw)
{
    char sock[sizeof(gw->ipc_dir) + 16];
    if (!gw->ipc_dir[0])
        return;
    snprintf(sock, sizeof(sock), "%s/broker", gw->ipc_dir);
    unlink(sock);
    if (rmdir(gw->ipc_dir) != 0)
        gw_log(GW_LOG_WARN, "gateway", "rmdir(%s): %s", gw->ipc_dir, strerror(errno));
    gw->ipc_dir[0] = '\0';
}

static void on_stop_signal(uv_signal_t *sig, int signum)
{
    gateway *gw = sig->data;
    if (gw->stopping)
        return;
    gw->stopping = true;
    gw_log(GW_LOG_INFO, "gateway", "%s: draining (up to %u ms)",
           signum == SIGINT ? "SIGINT" : "SIGTERM", gw->cfg.shutdown_timeout_ms);
    uv_close((uv_handle_t *)&gw->sigterm, NULL);
    uv_close((uv_handle_t *)&gw->sigint, NULL);
    uv_close((uv_handle_t *)&gw->sighup, NULL);
    gw__keywatch_close(&gw->keywatch);
    gw_http_server_shutdown(gw->http, gw->cfg.shutdown_timeout_ms, on_http_stopped, gw);
}

/* File descriptors kept beyond max-connections: listener, broker, workers, logs. */
#define GW_FD_RESERVE 256

/* Raises the soft limit on open files towards the hard one, so that max-connections
 * is reachable; says so once when it is not. */
static void raise_fd_limit(const gw_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        gw_log(GW_LOG_ERROR, "gateway", "getrlimit(RLIMIT_NOFILE) failed: %s", strerror(errno));
        return;
    }
    rlim_t want = (rlim_t)cfg->http.max_connections + GW_FD_RESERVE;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        gw_log(GW_LOG_ERROR, "gateway", "setrlimit(RLIMIT_NOFILE) failed: %s", strerror(errno));
    if (rl.rlim_cur < want)
        gw_log(GW_LOG_WARN, "gateway",
               "open-file limit %llu is below --max-connections + %d; "
               "connections past it fail to be accepted",
               (unsigned long long)rl.rlim_cur, GW_FD_RESERVE);
}

static int gateway_start(gateway *gw)
{
    gw->router = gw_router_new();
    if (!gw->router || gw_routes_add_builtin(gw->router) != 0 ||
        gw_introspection_add_routes(gw->router, &gw->intro) != 0) {
        gw_log(GW_LOG_ERROR, "gateway", "router setup failed: out of memory");
        return -1;
    }
    /* Probes and docs stay open whatever --auth-default says: load balancers and
     * browsers reach them without credentials. */
    static const gw_route_policy open_route = {.auth = BR_AUTH_NONE};
    static const char *const open_paths[] = {"/healthz", "/metrics", "/openapi.json", "/docs"};
    for (size_t i = 0; i < sizeof(open_paths) / sizeof(open_paths[0]); i++)
        gw_router_set_policy(gw->router, "GET", open_paths[i], &open_route);
    if (strcmp(gw->cfg.broker_endpoint, GW_CONFIG_BROKER_AUTO) == 0 && make_ipc_endpoint(gw) != 0)
        return -1;
    gw->cfg.broker.endpoint = gw->cfg.broker_endpoint;
    gw->cfg.broker.retry_idempotent = gw->cfg.broker_retry != 0;
    gw->cfg.broker.worker_header = gw->cfg.worker_header != 0;
    gw->cfg.broker.check_replies = gw->cfg.check_replies != 0;
    gw->cfg.ws.deflate = gw->cfg.ws_deflate != 0;
    gw->cfg.broker.ws = &gw->cfg.ws;
    if (gw_curve_load(&gw->curve, gw->cfg.curve_secret_key_file, gw->cfg.curve_authorized_keys))
        return -1;
    if (gw->curve.on)
        gw->cfg.broker.curve = &gw->curve;
    else if (gw->cfg.insecure_broker && !gw_broker_endpoint_local(gw->cfg.broker_endpoint))
        gw_log(GW_LOG_WARN, "gateway",
               "--insecure-broker: the broker on %s admits ANY process that reaches it as a "
               "worker, with the requests (headers, cookies, bodies) of the routes it claims",
               gw->cfg.broker_endpoint);
    gw->broker = gw_broker_new(&gw->loop, gw->router, &gw->cfg.broker);
    if (!gw->broker || gw_router_add(gw->router, "GET", "/readyz", readyz, gw->broker) != 0) {
        gw_log(GW_LOG_ERROR, "gateway", "broker setup failed");
        return -1;
    }
    gw_router_set_policy(gw->router, "GET", "/readyz", &open_route);
    if (gw_router_add(gw->router, "GET", "/actorz", actorz, gw->broker) != 0)
        return -1;
    gw->cfg.jobs.db = gw->cfg.jobs_db;
    gw->jobs = gw_jobs_new(&gw->loop, gw->router, gw->broker, &gw->cfg.jobs);
    if (!gw->jobs)
        return -1;
    gw_actors_config actors_cfg;
    gw_actors_config_defaults(&actors_cfg);
    actors_cfg.db = gw->cfg.actors_db;
    gw->actors = gw_actors_new(&gw->loop, gw->broker, &actors_cfg);
    if (!gw->actors)
        return -1;
    gw->intro.src.broker = gw->broker;
    gw->intro.src.actors = gw->actors;
    gw->intro.src.jobs = gw->jobs;
    gw->http = gw_http_server_new(&gw->loop, gw->router, &gw->cfg.http);
    if (!gw->http) {
        gw_log(GW_LOG_ERROR, "gateway", "gw_http_server_new failed");
        return -1;
    }
    uv_signal_init(&gw->loop, &gw->sigterm);
    uv_signal_init(&gw->loop, &gw->sigint);
    uv_signal_init(&gw->loop, &gw->sighup);
    gw->sigterm.data = gw->sigint.data = gw->sighup.data = gw;
    uv_signal_start(&gw->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&gw->sigint, on_stop_signal, SIGINT);
    uv_signal_start(&gw->sighup, on_sighup, SIGHUP);
    gw_edge_config edge_cfg;
    char why[GW_EDGE_TEXT_MAX + 128];
    gw__config_edge(&gw->cfg, &edge_cfg);
    gw->edge = gw_edge_new(&gw->loop, &edge_cfg, why, sizeof(why));
    if (!gw->edge) {
        gw_log(GW_LOG_ERROR, "gateway", "%s", why);
        return -1;
    }
    gw_edge_attach(gw->edge, gw->http);
    gw_edge_set_router(gw->edge, gw->router);
    /* Bind for workers before the HTTP front accepts requests for them. */
    if (gw_broker_start(gw->broker) != 0)
        return -1;
    if (gw->cfg.local && start_local_workers(gw) != 0)
        return -1;
    /* Not fatal when it cannot be made (logged): SIGHUP still reloads. */
    if (gw->curve.on && gw->cfg.curve_watch)
        gw->keywatch = gw__keywatch_new(&gw->loop, gw->curve.authorized, GW_KEYWATCH_SETTLE_MS,
                                        on_keys_changed, gw);
    gw->intro.src.http = gw->http;
    gw->intro.src.supervisor = gw->supervisor;
    gw->intro.auth_default = edge_cfg.auth_default;
    if (gw_http_server_start(gw->http, (const struct sockaddr *)&gw->cfg.listen_addr) != 0)
        return -1;
    gw_log(GW_LOG_INFO, "gateway", "listening on %s", gw->cfg.listen);
    return 0;
}

/* The signal handles, once initialised, after a failed start (every component closes
 * its own handles in its shutdown; closing them here as well would close them twice). */
static void close_signals(gateway *gw)
{
    uv_handle_t *sigs[] = {(uv_handle_t *)&gw->sigterm, (uv_handle_t *)&gw->sigint,
                           (uv_handle_t *)&gw->sighup};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (sigs[i]->loop && !uv_is_closing(sigs[i]))
            uv_close(sigs[i], NULL);
}

/* --processes N: the parent runs no gateway itself; it supervises N gateway processes
 * (this program again, told its index in BARISTA_PROCESS_INDEX) with the supervisor
 * local mode uses for workers, passes SIGHUP on, and on SIGTERM/SIGINT stops them all
 * and waits for them. */
typedef struct parent {
    uv_loop_t loop;      /* the parent's loop */
    gw_supervisor *sup;  /* the gateway processes */
    uv_signal_t sigs[3]; /* SIGTERM, SIGINT, SIGHUP */
    uint64_t grace_ms;   /* how long they may take to stop before SIGKILL */
    bool stopping;       /* a stop signal arrived */
} parent;

static void on_children_stopped(void *arg)
{
    parent *p = arg;
    for (size_t i = 0; i < sizeof(p->sigs) / sizeof(p->sigs[0]); i++)
        uv_close((uv_handle_t *)&p->sigs[i], NULL);
}

static void on_parent_signal(uv_signal_t *sig, int signum)
{
    parent *p = sig->data;
    if (signum == SIGHUP) {
        gw_supervisor_signal(p->sup, SIGHUP);
        return;
    }
    if (p->stopping)
        return;
    p->stopping = true;
    gw_log(GW_LOG_INFO, "gateway", "%s: stopping the gateway processes (up to %llu ms)",
           signum == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)p->grace_ms);
    gw_supervisor_shutdown(p->sup, p->grace_ms, on_children_stopped, p);
}

/* Runs the parent of --processes N; returns the exit status: 1 when a gateway process
 * could not be started or its last exit was not a clean one (status 0, no signal). */
static int run_parent(const gw_config *cfg, int argc, char **argv)
{
    static parent p;
    char exe[4096];
    size_t len = sizeof(exe);
    int status = 0;
    if (uv_exepath(exe, &len) != 0 || uv_loop_init(&p.loop) != 0) {
        gw_log(GW_LOG_ERROR, "gateway", "--processes: cannot find our own program");
        return 1;
    }
    /* A child stops gracefully (SIGTERM): its workers and requests drain, then the
     * local workers get their own shutdown timeout. */
    p.grace_ms = 2 * (uint64_t)cfg->shutdown_timeout_ms + 5000;
    p.sup = gw_supervisor_new(&p.loop);
    const char **args = calloc((size_t)argc + 1, sizeof(*args));
    if (!p.sup || !args) {
        gw_log(GW_LOG_ERROR, "gateway", "--processes: out of memory");
        free(args);
        gw_supervisor_destroy(&p.sup);
        uv_loop_close(&p.loop);
        return 1;
    }
    args[0] = exe;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    static const int signums[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof(p.sigs) / sizeof(p.sigs[0]); i++) {
        uv_signal_init(&p.loop, &p.sigs[i]);
        p.sigs[i].data = &p;
        uv_signal_start(&p.sigs[i], on_parent_signal, signums[i]);
    }
    char parent_env[48];
    snprintf(parent_env, sizeof(parent_env), "BARISTA_PROCESS_PARENT=%ld", (long)getpid());
    for (unsigned i = 0; i < cfg->processes && status == 0; i++) {
        char index_env[48], label[32];
        snprintf(index_env, sizeof(index_env), "BARISTA_PROCESS_INDEX=%u", i);
        snprintf(label, sizeof(label), "gateway-%u", i);
        const char *env[] = {index_env, parent_env, NULL};
        if (gw_supervisor_add(p.sup, label, args, env, 1) != 0)
            status = 1;
    }
    free(args);
    if (status != 0)
        on_parent_signal(&p.sigs[0], SIGTERM);
    else
        gw_log(GW_LOG_INFO, "gateway", "%u gateway processes on %s", cfg->processes, cfg->listen);
    uv_run(&p.loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < gw_supervisor_count(p.sup); i++) {
        gw_supervisor_proc_info info;
        if (gw_supervisor_proc_get(p.sup, i, &info) == 0 &&
            (info.exit_status != 0 || info.term_signal != 0)) {
            gw_log(GW_LOG_ERROR, "gateway", "%s (pid %d) ended with status %lld, signal %d",
                   info.label, info.pid, (long long)info.exit_status, info.term_signal);
            status = 1;
        }
    }
    gw_supervisor_destroy(&p.sup);
    if (uv_loop_close(&p.loop) != 0)
        status = 1;
    return status;
}

/* A gateway process of --processes N: its index (BARISTA_PROCESS_INDEX) picks its
 * broker endpoint and job store; it stops (SIGTERM) when the parent dies.  0, or -1
 * (logged) when the index is missing or bad. */
static int become_child(gw_config *cfg, const char *index_text)
{
    char *end;
    errno = 0;
    unsigned long index = strtoul(index_text, &end, 10);
    if (errno || *end || !isdigit((unsigned char)index_text[0]) || index >= cfg->processes) {
        gw_log(GW_LOG_ERROR, "gateway", "BARISTA_PROCESS_INDEX=%s: want 0..%u", index_text,
               cfg->processes - 1);
        return -1;
    }
    if (gw__config_for_process(cfg, (unsigned)index, stderr) != 0)
        return -1;
    const char *ppid = getenv("BARISTA_PROCESS_PARENT");
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    /* The parent may have died before prctl: then we were re-parented already. */
    if (ppid && strtol(ppid, NULL, 10) != (long)getppid()) {
        gw_log(GW_LOG_ERROR, "gateway", "the parent of the gateway processes is gone");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static gateway gw;
    switch (gw__config_load(&gw.cfg, argc, argv, stderr)) {
    case GW_CONFIG_HELP:
        return 0;
    case GW_CONFIG_BAD:
        return 2;
    case GW_CONFIG_RUN:
        break;
    }
    gw_log_configure((gw_log_level)gw.cfg.log_level, gw.cfg.log_json != 0);
    const char *index = getenv("BARISTA_PROCESS_INDEX");
    if (gw.cfg.processes > 1 && !index) {
        /* Every process's endpoint must exist before any starts. */
        static gw_config each;
        for (unsigned i = 1; i < gw.cfg.processes; i++) {
            each = gw.cfg;
            if (gw__config_for_process(&each, i, stderr) != 0)
                return 2;
        }
        return run_parent(&gw.cfg, argc, argv);
    }
    if (gw.cfg.processes > 1 && become_child(&gw.cfg, index) != 0)
        return 1;
    /* A peer that resets mid-write must be an error code, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(&gw.cfg);
    int rc = uv_loop_init(&gw.loop);
    if (rc < 0) {
        gw_log(GW_LOG_ERROR, "gateway", "uv_loop_init failed: %s", uv_strerror(rc));
        return 1;
    }
    int status = gateway_start(&gw) == 0 ? 0 : 1;
    if (status != 0) {
        if (gw.http && !gw.stopping)
            gw_http_server_shutdown(gw.http, 0, NULL, NULL);
        if (gw.broker)
            gw_broker_shutdown(gw.broker, NULL, NULL);
        if (gw.actors)
            gw_actors_shutdown(gw.actors, NULL, NULL);
        if (gw.jobs)
            gw_jobs_shutdown(gw.jobs, NULL, NULL);
        if (gw.supervisor)
            gw_supervisor_shutdown(gw.supervisor, 0, NULL, NULL);
        gw_edge_close(gw.edge);
        close_signals(&gw);
        gw__keywatch_close(&gw.keywatch);
    }
    uv_run(&gw.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&gw.loop);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "gateway", "uv_loop_close failed: %s", uv_strerror(rc));
        status = 1;
    }
    gw_http_server_destroy(&gw.http);
    gw_edge_destroy(&gw.edge);
    gw_supervisor_destroy(&gw.supervisor);
    gw_actors_destroy(&gw.actors); /* before the broker it is attached to */
    gw_jobs_destroy(&gw.jobs);     /* takes its routes out of the router */
    gw_broker_destroy(&gw.broker); /* takes its routes out of the router */
    gw_router_destroy(&gw.router);
    gw_introspection_free(&gw.intro);
    gw_curve_release(&gw.curve);
    remove_ipc_dir(&gw);
    return status;
}
