/*
 * main.c - barista-worker: hosts built-in services and connects them to a gateway.
 *
 * Every option is a flag and an environment variable; the flag wins.  A bad option or
 * value exits 2 with a one-line reason on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "barista/worker.h"
#include "priority.h"
#include "services.h"

#define EXIT_USAGE 2
/* The most services one process hosts (the protocol's own bound). */
#define MAX_SERVICES 64
#define DEFAULT_NICE 10
/* libuv's own default pool size, and the most it allows. */
#define DEFAULT_THREADPOOL 4
#define MAX_THREADPOOL     1024

static const char usage[] =
    "usage: barista-worker --services a,b [options]\n"
    "       barista-worker --list\n"
    "\n"
    "Hosts Barista services and serves them to a gateway's broker.\n"
    "\n"
    "  --services LIST        services to host, comma-separated (BARISTA_SERVICES)\n"
    "  --connect ENDPOINT     broker endpoint (BARISTA_CONNECT, default " BR_WORKER_DEFAULT_CONNECT
    ")\n"
    "  --concurrency N        io: requests in flight at once (BARISTA_CONCURRENCY, default 1024)\n"
    "  --nice N               cpu: process niceness (BARISTA_NICE, default 10)\n"
    "  --sched POLICY         cpu: idle (SCHED_IDLE: only CPU time the I/O path leaves),\n"
    "                         batch or other (BARISTA_SCHED, default other)\n"
    "  --heartbeat-ms N       heartbeat interval (BARISTA_HEARTBEAT_MS, default 1000)\n"
    "  --drain-timeout-ms N   on SIGTERM, time for in-flight work (BARISTA_DRAIN_TIMEOUT_MS,\n"
    "                         default 30000)\n"
    "  --id ID                worker id (BARISTA_WORKER_ID, default host:pid)\n"
    "  --outbox PATH          email task: the outbox file (BARISTA_OUTBOX, default\n"
    "                         ./barista-outbox.txt)\n"
    "  --threadpool N         threads of the pool behind br_offload and cpu handlers\n"
    "                         (BARISTA_THREADPOOL, default 4; sets UV_THREADPOOL_SIZE)\n"
    "  --stall-ms N           io: log a loop callback that blocks longer, with its route\n"
    "                         (BARISTA_STALL_MS, default 100)\n"
    "  --upstream-url URL     the one upstream the fetch service calls\n"
    "                         (BARISTA_UPSTREAM_URL)\n"
    "  --curve-server-key KEY|@FILE\n"
    "                         the broker's CURVE public key (Z85, or read from FILE):\n"
    "                         authenticate to a gateway that requires it\n"
    "                         (BARISTA_CURVE_SERVER_KEY)\n"
    "  --curve-secret-key-file PATH\n"
    "                         this worker's CURVE key-pair file (barista-keygen), needed\n"
    "                         with --curve-server-key (BARISTA_CURVE_SECRET_KEY_FILE)\n"
    "  --list                 print the built-in services, their kind and routes\n"
    "  --help                 print this help\n"
    "\n"
    "A worker hosts io services or cpu services, never both.\n";

/* What the command line and the environment ask for. */
typedef struct config {
    const char *services;     /* comma-separated names */
    br_worker_options opts;   /* runtime options */
    long nice;                /* niceness for a cpu worker */
    long threadpool;          /* thread-pool size, or 0 for libuv's default */
    const char *upstream;     /* the fetch service's upstream, or NULL */
    const char *curve_server; /* --curve-server-key: KEY or @FILE, or NULL */
    const char *curve_file;   /* --curve-secret-key-file, or NULL */
    br__sched sched;          /* scheduling policy for a cpu worker */
    bool list;                /* --list */
    bool help;                /* --help */
} config;

__attribute__((format(printf, 1, 2))) static int fail_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "barista-worker: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return EXIT_USAGE;
}

/* Parses a whole decimal integer in [min, max]. */
static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int set_u32(const char *name, const char *s, long min, long max, uint32_t *out)
{
    long v;
    if (parse_long(s, min, max, &v) != 0)
        return fail_usage("bad value for %s: %s", name, s);
    *out = (uint32_t)v;
    return 0;
}

/* Applies one option's value; `name` is the flag or the variable it came from. */
static int apply(config *c, int opt, const char *name, const char *v)
{
    switch (opt) {
    case 's':
        c->services = v;
        return 0;
    case 'c':
        c->opts.connect = v;
        return 0;
    case 'i':
        c->opts.worker_id = v;
        return 0;
    case 'o':
        /* The email service reads it from the environment, where the flag puts it. */
        if (setenv("BARISTA_OUTBOX", v, 1) != 0)
            return fail_usage("setenv(BARISTA_OUTBOX): %s", strerror(errno));
        return 0;
    case 'n':
        return set_u32(name, v, 1, BR_WORKER_MAX_CONCURRENCY, &c->opts.concurrency);
    case 'h':
        return set_u32(name, v, 10, 3600000, &c->opts.heartbeat_ms);
    case 'd':
        return set_u32(name, v, 1, 86400000, &c->opts.drain_timeout_ms);
    case 't':
        if (parse_long(v, 1, MAX_THREADPOOL, &c->threadpool) != 0)
            return fail_usage("bad value for %s: %s (want 1..%d)", name, v, MAX_THREADPOOL);
        return 0;
    case 'S':
        return set_u32(name, v, 1, 3600000, &c->opts.stall_ms);
    case 'u':
        if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
            return fail_usage("bad value for %s: %s (want http:// or https://)", name, v);
        c->upstream = v;
        return 0;
    case 'K':
        c->curve_server = v;
        return 0;
    case 'k':
        c->curve_file = v;
        return 0;
    case 'N':
        if (parse_long(v, -20, 19, &c->nice) != 0)
            return fail_usage("bad value for %s: %s (want -20..19)", name, v);
        return 0;
    case 'P':
        if (br__sched_parse(v, &c->sched) != 0)
            return fail_usage("bad value for %s: %s (want idle, batch or other)", name, v);
        return 0;
    }
    return 0;
}

/* The options, each with its getopt code and its environment variable. */
static const struct option longopts[] = {
    {"services", required_argument, NULL, 's'},
    {"connect", required_argument, NULL, 'c'},
    {"concurrency", required_argument, NULL, 'n'},
    {"nice", required_argument, NULL, 'N'},
    {"sched", required_argument, NULL, 'P'},
    {"heartbeat-ms", required_argument, NULL, 'h'},
    {"drain-timeout-ms", required_argument, NULL, 'd'},
    {"id", required_argument, NULL, 'i'},
    {"outbox", required_argument, NULL, 'o'},
    {"threadpool", required_argument, NULL, 't'},
    {"stall-ms", required_argument, NULL, 'S'},
    {"upstream-url", required_argument, NULL, 'u'},
    {"curve-server-key", required_argument, NULL, 'K'},
    {"curve-secret-key-file", required_argument, NULL, 'k'},
    {"list", no_argument, NULL, 'l'},
    {"help", no_argument, NULL, 'H'},
    {NULL, 0, NULL, 0},
};

static const struct {
    int opt;         /* the option's getopt code */
    const char *env; /* its environment variable */
} env_vars[] = {
    {'s', "BARISTA_SERVICES"},
    {'c', "BARISTA_CONNECT"},
    {'n', "BARISTA_CONCURRENCY"},
    {'N', "BARISTA_NICE"},
    {'h', "BARISTA_HEARTBEAT_MS"},
    {'d', "BARISTA_DRAIN_TIMEOUT_MS"},
    {'i', "BARISTA_WORKER_ID"},
    {'t', "BARISTA_THREADPOOL"},
    {'S', "BARISTA_STALL_MS"},
    {'u', "BARISTA_UPSTREAM_URL"},
    {'P', "BARISTA_SCHED"},
    {'K', "BARISTA_CURVE_SERVER_KEY"},
    {'k', "BARISTA_CURVE_SECRET_KEY_FILE"},
};

/* Flags first; then the environment fills in what no flag gave, so a flag wins even
 * over a variable that holds a bad value. */
static int parse(int argc, char **argv, config *c)
{
    bool given[128] = {false};
    opterr = 0;
    int opt, idx = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        if (opt == 'H') {
            c->help = true;
        } else if (opt == 'l') {
            c->list = true;
        } else if (opt == '?' || opt == ':') {
            return fail_usage("unknown option or missing value: %s (see --help)", argv[optind - 1]);
        } else {
            char flag[32];
            snprintf(flag, sizeof(flag), "--%s", longopts[idx].name);
            if (apply(c, opt, flag, optarg) != 0)
                return EXIT_USAGE;
            given[opt] = true;
        }
    }
    if (optind < argc)
        return fail_usage("unexpected argument: %s (see --help)", argv[optind]);
    for (size_t i = 0; i < BR_NELEMS(env_vars); i++) {
        const char *v = getenv(env_vars[i].env);
        if (!given[env_vars[i].opt] && v && *v &&
            apply(c, env_vars[i].opt, env_vars[i].env, v) != 0)
            return EXIT_USAGE;
    }
    return 0;
}

/* --curve-server-key and --curve-secret-key-file: both or neither.  Fills the
 * options' CURVE fields (pointing into server_key and keys) when given. */
static int load_curve(config *c, char server_key[BR_CURVE_Z85_LEN + 1], br_curve_keypair *keys)
{
    char why[512];
    memset(keys, 0, sizeof(*keys));
    if (!c->curve_server && !c->curve_file)
        return 0;
    if (!c->curve_server || !c->curve_file)
        return fail_usage("--curve-server-key and --curve-secret-key-file go together");
    if (br_curve_public_key_load(c->curve_server, server_key, why, sizeof(why)) != 0)
        return fail_usage("bad value for --curve-server-key: %s", why);
    if (br_curve_keypair_read(c->curve_file, keys, why, sizeof(why)) != 0)
        return fail_usage("bad value for --curve-secret-key-file: %s", why);
    c->opts.curve_server_key = server_key;
    c->opts.curve_keys = keys;
    return 0;
}

static void list_services(void)
{
    for (size_t i = 0; i < br_builtin_count; i++) {
        const br_service_spec *s = br_builtin_services[i];
        printf("%-8s %-3s", s->name, s->kind == BR_KIND_CPU ? "cpu" : "io");
        for (size_t r = 0; r < s->nroutes; r++)
            printf("%s %s %s", r ? "," : " ", s->routes[r].method, s->routes[r].path);
        for (size_t t = 0; t < s->ntasks; t++)
            printf("%s %s", t ? "," : "  task", s->tasks[t].name);
        printf("\n");
    }
}

/* Resolves the comma-separated names into out[]; returns how many, or -1. */
static int pick_services(const char *list, const br_service_spec **out)
{
    int n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const br_service_spec *s = br_builtin_find(p, len);
        if (!s) {
            fprintf(stderr, "barista-worker: unknown service '%.*s' (see --list)\n", (int)len, p);
            return -1;
        }
        if (n == MAX_SERVICES) {
            fprintf(stderr, "barista-worker: more than %d services\n", MAX_SERVICES);
            return -1;
        }
        out[n++] = s;
        if (!comma)
            return n;
        p = comma + 1;
    }
}

int main(int argc, char **argv)
{
    config c;
    memset(&c, 0, sizeof(c));
    c.nice = DEFAULT_NICE;
    c.sched = BR__SCHED_OTHER;
    if (parse(argc, argv, &c) != 0)
        return EXIT_USAGE;
    /* Local mode: the gateway that spawned us sets this so that a worker never outlives
     * it, even when the gateway is killed with SIGKILL and cannot stop us itself. */
    const char *with_parent = getenv("BARISTA_EXIT_WITH_PARENT");
    if (with_parent && strcmp(with_parent, "1") == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
            fprintf(stderr, "barista-worker: prctl(PR_SET_PDEATHSIG): %s\n", strerror(errno));
        if (getppid() == 1)
            return 1; /* the parent is already gone */
    }
    if (c.help) {
        fputs(usage, stdout);
        return 0;
    }
    if (c.list) {
        list_services();
        return 0;
    }
    if (!c.services || !*c.services)
        return fail_usage("--services is required (see --help)");
    const char *ep = c.opts.connect;
    if (ep && strncmp(ep, "tcp://", 6) != 0 && strncmp(ep, "ipc://", 6) != 0)
        return fail_usage("bad value for --connect: %s (want tcp:// or ipc://)", ep);

    br_curve_keypair keys;
    char server_key[BR_CURVE_Z85_LEN + 1];
    if (load_curve(&c, server_key, &keys) != 0)
        return EXIT_USAGE;

    const br_service_spec *picked[MAX_SERVICES];
    int n = pick_services(c.services, picked);
    if (n < 0)
        return EXIT_USAGE;
    char why[256];
    if (br_services_check(picked, (size_t)n, why, sizeof(why)) != 0)
        return fail_usage("%s", why);

    if (picked[0]->kind == BR_KIND_CPU)
        br__sched_apply(c.sched, (int)c.nice);

    /* Both are read by code that runs later: the pool size when the loop first queues
     * work, the upstream by the fetch service. */
    char pool[16];
    snprintf(pool, sizeof(pool), "%ld", c.threadpool ? c.threadpool : DEFAULT_THREADPOOL);
    if ((c.threadpool && setenv("UV_THREADPOOL_SIZE", pool, 1) != 0) ||
        (c.upstream && setenv("BARISTA_UPSTREAM_URL", c.upstream, 1) != 0)) {
        fprintf(stderr, "barista-worker: setenv: %s\n", strerror(errno));
        return 1;
    }
    const char *size = getenv("UV_THREADPOOL_SIZE");
    fprintf(stderr, "barista-worker[%ld]: thread pool: %s threads\n", (long)getpid(),
            size && *size ? size : pool);

    br_worker *w = br_worker_new(picked, (size_t)n, &c.opts);
    br_curve_keypair_wipe(&keys); /* the worker keeps its own copy */
    if (!w)
        return 1;
    int rc = br_worker_run(w);
    if (rc == BR_ECLOSED)
        return 1; /* handlers still hold memory: leave it to exit rather than free it */
    br_worker_destroy(&w);
    return rc == 0 ? 0 : 1;
}
