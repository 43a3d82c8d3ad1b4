/*
 * cli.c - br_worker_main: any program that calls it is a full worker, with the whole
 * worker command line, its environment variables, the options its services declare,
 * --list and --help.
 *
 * Every option is a flag and an environment variable; the flag wins.  A bad option or
 * value exits 2 with a one-line reason on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "priority.h"
#include "worker_int.h"

#define EXIT_USAGE 2
/* The most services one process hosts (the protocol's own bound). */
#define MAX_SERVICES 64
/* The most options the services of one program declare. */
#define MAX_SERVICE_OPTIONS 256
#define DEFAULT_NICE        10
/* libuv's own default pool size, and the most it allows. */
#define DEFAULT_THREADPOOL 4
#define MAX_THREADPOOL     1024
/* Bytes of every broker endpoint given, joined by commas. */
#define CONNECT_MAX 4096
/* getopt codes of service options: SERVICE_OPT + their index. */
#define SERVICE_OPT 1000
/* Column where --help text starts, and the width it wraps at. */
#define HELP_COLUMN 25
#define HELP_WIDTH  90

static const char usage_head[] = "usage: %s [--services a,b] [options]\n"
                                 "       %s --list\n"
                                 "\n"
                                 "Hosts Barista services and serves them to a gateway's broker.\n"
                                 "\n";

static const char usage_options[] =
    "  --services LIST        services to host, comma-separated (BARISTA_SERVICES; default:\n"
    "                         all, when they are of one kind)\n"
    "  --connect ENDPOINT[,ENDPOINT...]\n"
    "                         broker endpoints: the worker registers with every one and\n"
    "                         shares its capacity between them (BARISTA_CONNECT, default\n"
    "                         " BR_WORKER_DEFAULT_CONNECT ")\n"
    "  --broker ENDPOINT      one more broker endpoint, repeatable; same list as --connect\n"
    "                         (BARISTA_BROKER, read when BARISTA_CONNECT is not set)\n"
    "                         A tcp://NAME:PORT endpoint is every address NAME resolves to\n"
    "                         (compose's --scale, Swarm's tasks.NAME): one broker each\n"
    "  --resolve-ms N         resolve endpoint names again every N ms, and when a broker\n"
    "                         falls silent (BARISTA_RESOLVE_MS, default 5000)\n"
    "  --concurrency N        io: requests in flight at once (BARISTA_CONCURRENCY, default 1024)\n"
    "  --nice N               cpu: process niceness (BARISTA_NICE, default 10)\n"
    "  --sched POLICY         cpu: idle (SCHED_IDLE: only CPU time the I/O path leaves),\n"
    "                         batch or other (BARISTA_SCHED, default other)\n"
    "  --cpus LIST            cpu: CPUs to run on: all, auto (all but the lowest, left to the\n"
    "                         gateway and I/O workers) or numbers like 1-3,6 (BARISTA_CPUS,\n"
    "                         default all)\n"
    "  --heartbeat-ms N       heartbeat interval (BARISTA_HEARTBEAT_MS, default 1000)\n"
    "  --drain-timeout-ms N   on SIGTERM, time for in-flight work (BARISTA_DRAIN_TIMEOUT_MS,\n"
    "                         default 30000)\n"
    "  --id ID                worker id (BARISTA_WORKER_ID, default host:pid)\n"
    "  --threadpool N         threads of the pool behind br_offload and cpu handlers\n"
    "                         (BARISTA_THREADPOOL, default 4; sets UV_THREADPOOL_SIZE)\n"
    "  --stall-ms N           io: log a loop callback that blocks longer, with its route\n"
    "                         (BARISTA_STALL_MS, default 100)\n"
    "  --max-requests N       recycle: drain and exit after N requests and jobs, for the\n"
    "                         supervisor to start a fresh process (BARISTA_MAX_REQUESTS,\n"
    "                         default 0: never)\n"
    "  --max-requests-jitter N\n"
    "                         add a random 0..N to --max-requests, so that a pool does not\n"
    "                         recycle at once (BARISTA_MAX_REQUESTS_JITTER, default 0)\n"
    "  --max-rss-mb N         recycle once the resident set passes N MB (BARISTA_MAX_RSS_MB,\n"
    "                         default 0: never)\n"
    "  --curve-server-key KEY|@FILE\n"
    "                         the broker's CURVE public key (Z85, or read from FILE):\n"
    "                         authenticate to a gateway that requires it\n"
    "                         (BARISTA_CURVE_SERVER_KEY)\n"
    "  --curve-secret-key-file PATH\n"
    "                         this worker's secret CURVE certificate (NAME_secret from\n"
    "                         barista-keygen), needed with --curve-server-key\n"
    "                         (BARISTA_CURVE_SECRET_KEY_FILE)\n"
    "  --prefer-first-broker  with fewer slots than brokers (a cpu worker), serve the first\n"
    "                         endpoint while it lives (default: a broker picked by pid)\n"
    "  --list                 print the services, their kind and routes\n"
    "  --help                 print this help\n";

/* What the command line and the environment ask for. */
typedef struct cli {
    const char *prog;                  /* program name for messages */
    const br_service_spec *const *all; /* every service the program can host */
    size_t nall;                       /* entries in all */
    const char *services;              /* --services: comma-separated names */
    char connect[CONNECT_MAX];         /* --connect and --broker values, comma-joined */
    br_worker_options opts;            /* runtime options */
    long nice;                         /* niceness for a cpu worker */
    long threadpool;                   /* thread-pool size, or 0 for libuv's default */
    const char *curve_server;          /* --curve-server-key: KEY or @FILE, or NULL */
    const char *curve_file;            /* --curve-secret-key-file, or NULL */
    br__sched sched;                   /* scheduling policy for a cpu worker */
    br__cpus cpus;                     /* the CPUs a cpu worker may run on */
    bool list;                         /* --list */
    bool help;                         /* --help */
    const br_option_spec *sopt[MAX_SERVICE_OPTIONS]; /* the services' options, by name */
    const char *sowner[MAX_SERVICE_OPTIONS];         /* the service declaring each first */
    const char *sflag[MAX_SERVICE_OPTIONS];          /* the value given as a flag, or NULL */
    size_t nsopt;                                    /* entries in the three above */
} cli;

__attribute__((format(printf, 2, 3))) static int fail_usage(const cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", c->prog);
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

static int set_u32(const cli *c, const char *name, const char *s, long min, long max, uint32_t *out)
{
    long v;
    if (parse_long(s, min, max, &v) != 0)
        return fail_usage(c, "bad value for %s: %s", name, s);
    *out = (uint32_t)v;
    return 0;
}

static int set_u64(const cli *c, const char *name, const char *s, uint64_t *out)
{
    long v;
    if (parse_long(s, 0, 1L << 40, &v) != 0)
        return fail_usage(c, "bad value for %s: %s (want 0 or more)", name, s);
    *out = (uint64_t)v;
    return 0;
}

/* --connect and --broker: each comma-separated endpoint must be tcp:// or ipc://; a
 * flag given again adds to the list. */
static int add_endpoints(cli *c, const char *name, const char *v)
{
    for (const char *p = v; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        if (len < 7 || (strncmp(p, "tcp://", 6) != 0 && strncmp(p, "ipc://", 6) != 0))
            return fail_usage(c, "bad value for %s: %s (want tcp:// or ipc:// endpoints)", name, v);
        if (!end)
            break;
        p = end + 1;
    }
    size_t have = strlen(c->connect);
    if (have + 1 + strlen(v) + 1 > sizeof(c->connect))
        return fail_usage(c, "%s: too many broker endpoints", name);
    snprintf(c->connect + have, sizeof(c->connect) - have, "%s%s", have ? "," : "", v);
    c->opts.connect = c->connect;
    return 0;
}

/* Applies one worker option's value; `name` is the flag or the variable it came from. */
static int apply(cli *c, int opt, const char *name, const char *v)
{
    switch (opt) {
    case 's':
        c->services = v;
        return 0;
    case 'c':
        return add_endpoints(c, name, v);
    case 'i':
        c->opts.worker_id = v;
        return 0;
    case 'n':
        return set_u32(c, name, v, 1, BR_WORKER_MAX_CONCURRENCY, &c->opts.concurrency);
    case 'h':
        return set_u32(c, name, v, 10, 3600000, &c->opts.heartbeat_ms);
    case 'R':
        return set_u32(c, name, v, 100, 3600000, &c->opts.resolve_ms);
    case 'd':
        return set_u32(c, name, v, 1, 86400000, &c->opts.drain_timeout_ms);
    case 't':
        if (parse_long(v, 1, MAX_THREADPOOL, &c->threadpool) != 0)
            return fail_usage(c, "bad value for %s: %s (want 1..%d)", name, v, MAX_THREADPOOL);
        return 0;
    case 'S':
        return set_u32(c, name, v, 1, 3600000, &c->opts.stall_ms);
    case 'm':
        return set_u64(c, name, v, &c->opts.max_requests);
    case 'j':
        return set_u64(c, name, v, &c->opts.max_requests_jitter);
    case 'r':
        return set_u64(c, name, v, &c->opts.max_rss_mb);
    case 'K':
        c->curve_server = v;
        return 0;
    case 'k':
        c->curve_file = v;
        return 0;
    case 'N':
        if (parse_long(v, -20, 19, &c->nice) != 0)
            return fail_usage(c, "bad value for %s: %s (want -20..19)", name, v);
        return 0;
    case 'P':
        if (br__sched_parse(v, &c->sched) != 0)
            return fail_usage(c, "bad value for %s: %s (want idle, batch or other)", name, v);
        return 0;
    case 'U': {
        char why[128];
        if (br__cpus_parse(v, &c->cpus, why, sizeof(why)) != 0)
            return fail_usage(c, "bad value for %s: %s (%s)", name, v, why);
        return 0;
    }
    }
    return 0;
}

/* The worker's own options, each with its getopt code and its environment variable. */
static const struct {
    const char *name; /* the flag without its dashes */
    int has_arg;      /* getopt's required_argument / no_argument */
    int code;         /* getopt's code, and apply()'s */
    const char *env;  /* its environment variable, or NULL */
} worker_opts[] = {
    {"services", required_argument, 's', "BARISTA_SERVICES"},
    {"connect", required_argument, 'c', "BARISTA_CONNECT"},
    {"broker", required_argument, 'c', "BARISTA_BROKER"},
    {"resolve-ms", required_argument, 'R', "BARISTA_RESOLVE_MS"},
    {"concurrency", required_argument, 'n', "BARISTA_CONCURRENCY"},
    {"nice", required_argument, 'N', "BARISTA_NICE"},
    {"sched", required_argument, 'P', "BARISTA_SCHED"},
    {"cpus", required_argument, 'U', "BARISTA_CPUS"},
    {"heartbeat-ms", required_argument, 'h', "BARISTA_HEARTBEAT_MS"},
    {"drain-timeout-ms", required_argument, 'd', "BARISTA_DRAIN_TIMEOUT_MS"},
    {"id", required_argument, 'i', "BARISTA_WORKER_ID"},
    {"threadpool", required_argument, 't', "BARISTA_THREADPOOL"},
    {"stall-ms", required_argument, 'S', "BARISTA_STALL_MS"},
    {"max-requests", required_argument, 'm', "BARISTA_MAX_REQUESTS"},
    {"max-requests-jitter", required_argument, 'j', "BARISTA_MAX_REQUESTS_JITTER"},
    {"max-rss-mb", required_argument, 'r', "BARISTA_MAX_RSS_MB"},
    {"curve-server-key", required_argument, 'K', "BARISTA_CURVE_SERVER_KEY"},
    {"curve-secret-key-file", required_argument, 'k', "BARISTA_CURVE_SECRET_KEY_FILE"},
    {"prefer-first-broker", no_argument, 'F', NULL},
    {"list", no_argument, 'l', NULL},
    {"help", no_argument, 'H', NULL},
};

#define NWORKER_OPTS BR_NELEMS(worker_opts)

/* Gathers the options every service of the program declares, one entry per name. */
static int collect_service_options(cli *c)
{
    for (size_t i = 0; i < c->nall; i++) {
        const br_service_spec *s = c->all[i];
        for (size_t k = 0; k < s->noptions; k++) {
            const br_option_spec *o = &s->options[k];
            bool seen = false;
            for (size_t j = 0; j < c->nsopt && !seen; j++)
                seen = strcmp(c->sopt[j]->name, o->name) == 0;
            for (size_t j = 0; j < NWORKER_OPTS && !seen; j++) {
                if (strcmp(worker_opts[j].name, o->name) == 0)
                    return fail_usage(c, "service %s: option --%s clashes with a worker option",
                                      s->name, o->name);
            }
            if (seen)
                continue;
            if (c->nsopt == MAX_SERVICE_OPTIONS)
                return fail_usage(c, "more than %d service options", MAX_SERVICE_OPTIONS);
            c->sopt[c->nsopt] = o;
            c->sowner[c->nsopt] = s->name;
            c->nsopt++;
        }
    }
    return 0;
}

/* Flags first; then the environment fills in what no flag gave, so a flag wins even
 * over a variable that holds a bad value. */
static int parse(cli *c, int argc, char **argv)
{
    struct option longopts[NWORKER_OPTS + MAX_SERVICE_OPTIONS + 1];
    size_t n = 0;
    for (size_t i = 0; i < NWORKER_OPTS; i++)
        longopts[n++] =
            (struct option){worker_opts[i].name, worker_opts[i].has_arg, NULL, worker_opts[i].code};
    for (size_t i = 0; i < c->nsopt; i++)
        longopts[n++] =
            (struct option){c->sopt[i]->name, required_argument, NULL, SERVICE_OPT + (int)i};
    longopts[n] = (struct option){NULL, 0, NULL, 0};

    bool given[128] = {false};
    opterr = 0;
    optind = 1;
    int opt, idx = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        if (opt == 'H') {
            c->help = true;
        } else if (opt == 'l') {
            c->list = true;
        } else if (opt == 'F') {
            c->opts.prefer_first_broker = true;
        } else if (opt == '?' || opt == ':') {
            return fail_usage(c, "unknown option or missing value: %s (see --help)",
                              argv[optind - 1]);
        } else if (opt >= SERVICE_OPT) {
            c->sflag[opt - SERVICE_OPT] = optarg;
        } else {
            char flag[48];
            snprintf(flag, sizeof(flag), "--%s", longopts[idx].name);
            if (apply(c, opt, flag, optarg) != 0)
                return EXIT_USAGE;
            given[opt] = true;
        }
    }
    if (optind < argc)
        return fail_usage(c, "unexpected argument: %s (see --help)", argv[optind]);
    for (size_t i = 0; i < NWORKER_OPTS; i++) {
        const char *env = worker_opts[i].env;
        const char *v = env ? getenv(env) : NULL;
        if (given[worker_opts[i].code] || !v || !*v)
            continue;
        if (apply(c, worker_opts[i].code, env, v) != 0)
            return EXIT_USAGE;
        given[worker_opts[i].code] = true; /* BARISTA_CONNECT before BARISTA_BROKER */
    }
    return 0;
}

/* --curve-server-key and --curve-secret-key-file: both or neither.  Loads them into
 * server_key and keys; *on tells whether CURVE is on. */
static int load_curve(const cli *c, char server_key[BR_CURVE_Z85_LEN + 1], br_curve_keypair *keys,
                      bool *on)
{
    char why[512];
    memset(keys, 0, sizeof(*keys));
    *on = false;
    if (!c->curve_server && !c->curve_file)
        return 0;
    if (!c->curve_server || !c->curve_file)
        return fail_usage(c, "--curve-server-key and --curve-secret-key-file go together");
    if (br_curve_public_key_load(c->curve_server, server_key, why, sizeof(why)) != 0)
        return fail_usage(c, "bad value for --curve-server-key: %s", why);
    if (br_curve_keypair_read(c->curve_file, keys, why, sizeof(why)) != 0)
        return fail_usage(c, "bad value for --curve-secret-key-file: %s", why);
    *on = true;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* --help and --list.                                                                  */

/* Prints text from column `col`, wrapped at HELP_WIDTH with HELP_COLUMN indent. */
static void print_wrapped(const char *text, size_t col)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t word = strcspn(p, " ");
        if (col > HELP_COLUMN && col + 1 + word > HELP_WIDTH) {
            printf("\n%*s", HELP_COLUMN, "");
            col = HELP_COLUMN;
        } else if (col > HELP_COLUMN) {
            putchar(' ');
            col++;
        }
        printf("%.*s", (int)word, p);
        col += word;
        p += word;
    }
    putchar('\n');
}

static void print_help(const cli *c)
{
    printf(usage_head, c->prog, c->prog);
    fputs(usage_options, stdout);
    if (c->nsopt)
        printf("\nService options:\n");
    for (size_t i = 0; i < c->nsopt; i++) {
        const br_option_spec *o = c->sopt[i];
        char flag[96], text[1024];
        int n = snprintf(flag, sizeof(flag), "  --%s %s", o->name,
                         o->type == BR_TYPE_INT || o->type == BR_TYPE_FLOAT ? "N" : "VALUE");
        snprintf(text, sizeof(text), "%s: %s (%s%s%s)", c->sowner[i], o->help ? o->help : "",
                 o->env ? o->env : "no variable", o->def ? ", default " : "", o->def ? o->def : "");
        if (n >= HELP_COLUMN - 1)
            printf("%s\n%*s", flag, HELP_COLUMN, "");
        else
            printf("%-*s", HELP_COLUMN, flag);
        print_wrapped(text, HELP_COLUMN);
    }
    printf("\nA worker hosts io services or cpu services, never both.\n");
}

static void list_services(const cli *c)
{
    for (size_t i = 0; i < c->nall; i++) {
        const br_service_spec *s = c->all[i];
        printf("%-8s %-3s", s->name, s->kind == BR_KIND_CPU ? "cpu" : "io");
        for (size_t r = 0; r < s->nroutes; r++)
            printf("%s %s %s", r ? "," : " ", s->routes[r].method, s->routes[r].path);
        for (size_t t = 0; t < s->ntasks; t++)
            printf("%s %s", t ? "," : "  task", s->tasks[t].name);
        printf("\n");
    }
}

/* ---------------------------------------------------------------------------------- */
/* Choosing the services.                                                              */

static const br_service_spec *find_service(const cli *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->nall; i++) {
        const char *n = c->all[i]->name;
        if (n && strlen(n) == len && memcmp(n, name, len) == 0)
            return c->all[i];
    }
    return NULL;
}

/* Resolves --services into out[]; returns how many, or -1 after a one-line reason.
 * Without --services: every service, when they are all of one kind. */
static int pick_services(const cli *c, const br_service_spec **out)
{
    if (!c->services || !*c->services) {
        for (size_t i = 0; i < c->nall; i++) {
            if (c->all[i]->kind != c->all[0]->kind) {
                fail_usage(c, "--services is required: this program has io and cpu services "
                              "(see --list)");
                return -1;
            }
        }
        if (c->nall > MAX_SERVICES) {
            fail_usage(c, "more than %d services: choose with --services", MAX_SERVICES);
            return -1;
        }
        for (size_t i = 0; i < c->nall; i++)
            out[i] = c->all[i];
        return (int)c->nall;
    }
    int n = 0;
    const char *p = c->services;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const br_service_spec *s = find_service(c, p, len);
        if (!s) {
            fail_usage(c, "unknown service '%.*s' (see --list)", (int)len, p);
            return -1;
        }
        if (n == MAX_SERVICES) {
            fail_usage(c, "more than %d services", MAX_SERVICES);
            return -1;
        }
        out[n++] = s;
        if (!comma)
            return n;
        p = comma + 1;
    }
}

/* True when one of picked[0..n) declares the option. */
static bool hosted_option(const br_service_spec **picked, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < picked[i]->noptions; k++) {
            if (strcmp(picked[i]->options[k].name, name) == 0)
                return true;
        }
    }
    return false;
}

/* Checks the options of the chosen services, flag or variable, before anything starts:
 * a bad one is a usage error. */
static int check_service_options(const cli *c, const br_service_spec **picked, int n)
{
    for (size_t i = 0; i < c->nsopt; i++) {
        const br_option_spec *o = c->sopt[i];
        if (!hosted_option(picked, n, o->name))
            continue;
        const char *env = o->env ? getenv(o->env) : NULL;
        const char *v = c->sflag[i] ? c->sflag[i] : env && *env ? env : NULL;
        char why[256], flag[96];
        snprintf(flag, sizeof(flag), "--%s", o->name);
        if (v && br__option_check(o, v, why, sizeof(why)) != 0)
            return fail_usage(c, "bad value for %s: %s (%s)", c->sflag[i] ? flag : o->env, v, why);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Running.                                                                            */

/* The part of a path after its last '/'. */
static const char *base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path && *path ? path : "barista-worker";
}

/* Sets the environment that code running later reads: the pool size (libuv reads it
 * when the loop first queues work).  0 or 1. */
static int set_threadpool(const cli *c)
{
    char pool[16];
    snprintf(pool, sizeof(pool), "%ld", c->threadpool ? c->threadpool : DEFAULT_THREADPOOL);
    if (c->threadpool && setenv("UV_THREADPOOL_SIZE", pool, 1) != 0) {
        fprintf(stderr, "%s: setenv: %s\n", c->prog, strerror(errno));
        return 1;
    }
    const char *size = getenv("UV_THREADPOOL_SIZE");
    br__log("thread pool: %s threads", size && *size ? size : pool);
    return 0;
}

int br_worker_main(int argc, char **argv, const br_service_spec *const *services, size_t n)
{
    cli c;
    memset(&c, 0, sizeof(c));
    c.prog = base_name(argc > 0 ? argv[0] : NULL);
    c.all = services;
    c.nall = n;
    c.nice = DEFAULT_NICE;
    c.sched = BR__SCHED_OTHER;
    c.opts.handle_signals = true;
    br__log_name(c.prog);
    if (collect_service_options(&c) != 0 || parse(&c, argc, argv) != 0)
        return EXIT_USAGE;
    /* Local mode: the gateway that spawned us sets this so that a worker never outlives
     * it, even when the gateway is killed with SIGKILL and cannot stop us itself. */
    const char *with_parent = getenv("BARISTA_EXIT_WITH_PARENT");
    if (with_parent && strcmp(with_parent, "1") == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
            fprintf(stderr, "%s: prctl(PR_SET_PDEATHSIG): %s\n", c.prog, strerror(errno));
        if (getppid() == 1)
            return 1; /* the parent is already gone */
    }
    if (c.help) {
        print_help(&c);
        return 0;
    }
    if (c.list) {
        list_services(&c);
        return 0;
    }
    if (n == 0)
        return fail_usage(&c, "the program has no services");

    br_curve_keypair keys;
    char server_key[BR_CURVE_Z85_LEN + 1];
    bool curve;
    if (load_curve(&c, server_key, &keys, &curve) != 0)
        return EXIT_USAGE;

    const br_service_spec *picked[MAX_SERVICES];
    int npicked = pick_services(&c, picked);
    if (npicked < 0)
        return EXIT_USAGE;
    char why[512];
    if (br_services_check(picked, (size_t)npicked, why, sizeof(why)) != 0)
        return fail_usage(&c, "%s", why);
    if (check_service_options(&c, picked, npicked) != 0)
        return EXIT_USAGE;

    if (picked[0]->kind == BR_KIND_CPU) {
        char chosen[256];
        if (br__cpus_apply(&c.cpus, chosen, sizeof(chosen)) != 0) {
            if (c.cpus.mode == BR__CPUS_LIST)
                return EXIT_USAGE; /* a list asked for by name is not silently ignored */
        } else if (chosen[0]) {
            br__log("CPU handlers run on CPUs %s", chosen);
        }
        br__sched_apply(c.sched, (int)c.nice);
    }
    if (set_threadpool(&c) != 0)
        return 1;

    br_worker *w = br__worker_new(picked, (size_t)npicked, &c.opts, curve ? server_key : NULL,
                                  curve ? &keys : NULL);
    br_curve_keypair_wipe(&keys); /* the worker keeps its own copy */
    if (!w)
        return 1;
    for (size_t i = 0; i < c.nsopt; i++) {
        if (c.sflag[i] && hosted_option(picked, npicked, c.sopt[i]->name) &&
            br_worker_set_option(w, c.sopt[i]->name, c.sflag[i], why, sizeof(why)) != 0) {
            br_worker_destroy(&w);
            return fail_usage(&c, "%s", why);
        }
    }
    int rc = br_worker_run(w);
    if (rc == BR_ECLOSED)
        return 1; /* handlers still hold memory: leave it to exit rather than free it */
    br_worker_destroy(&w);
    return rc == 0 ? 0 : 1;
}
