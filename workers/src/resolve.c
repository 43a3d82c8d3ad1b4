/*
 * resolve.c - the broker endpoints a worker was given, and the names among them.
 *
 * An endpoint `tcp://HOST:PORT` whose HOST is a name (not an IPv4 address, not a
 * bracketed IPv6 one) stands for every broker the name resolves to: compose's
 * `gateway` with `--scale gateway=2`, Swarm's `tasks.gateway`.  The worker resolves it
 * on the loop (uv_getaddrinfo runs getaddrinfo on the thread pool), keeps one link per
 * address, and resolves it again every resolve_ms and whenever one of its links falls
 * silent: an address that appears gets a link at once, a link whose address left the
 * answer leaves once its work is done (br__link_retire).  A failed resolution changes
 * nothing: the links keep what they have until an answer says otherwise.
 *
 * The lookups answer in any order, and a name's addresses come in any order (Docker's
 * DNS shuffles them), so the links are made in no useful order.  The capacity plan
 * (--prefer-first-broker's first broker, the seeded spread) follows br__link_before
 * instead: the endpoint's place in --connect, then the address.
 *
 * Any other endpoint (ipc://, inproc://, an address) is one link as it is.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker_int.h"

/* Longest endpoint made from an address: "tcp://[" + IPv6 text + "]:" + port. */
#define ADDR_ENDPOINT_MAX (8 + INET6_ADDRSTRLEN + 8)
/* Longest port text taken from an endpoint. */
#define PORT_MAX 5
/* How often a name with no address yet is tried (its gateway is not up: do not make
 * a worker started with it wait a whole resolve_ms). */
#define RESOLVE_EMPTY_MS 500

typedef char addr_endpoint[ADDR_ENDPOINT_MAX];
typedef uint8_t addr_key[BR_LINK_ADDR_KEY];

static char *dup_n(const char *p, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, p, n);
        c[n] = '\0';
    }
    return c;
}

/* Splits a tcp:// endpoint whose host is a name into s->host and s->port; leaves them
 * NULL for anything else (ZeroMQ takes it as it is).  0 or BR_ENOMEM. */
static int split_name(br__source *s)
{
    const char *e = s->endpoint;
    if (strncmp(e, "tcp://", 6) != 0)
        return 0;
    const char *host = e + 6;
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host || *host == '[' || strpbrk(host, ";*") != NULL)
        return 0;
    size_t port_len = strlen(colon + 1);
    if (port_len == 0 || port_len > PORT_MAX || strspn(colon + 1, "0123456789") != port_len)
        return 0;
    char addr[INET_ADDRSTRLEN];
    size_t host_len = (size_t)(colon - host);
    if (host_len < sizeof(addr)) {
        memcpy(addr, host, host_len);
        addr[host_len] = '\0';
        struct in_addr v4;
        if (inet_pton(AF_INET, addr, &v4) == 1)
            return 0;
    }
    s->host = dup_n(host, host_len);
    s->port = dup_n(colon + 1, port_len);
    return s->host && s->port ? 0 : BR_ENOMEM;
}

/* The process id spreads workers started on one host; in containers every worker
 * may be process 7, so the host name (a container's own id) is mixed in. */
static uint32_t start_seed(void)
{
    char host[256];
    uint32_t h = 2166136261u;
    if (gethostname(host, sizeof(host)) == 0) {
        host[sizeof(host) - 1] = '\0';
        for (const char *c = host; *c; c++)
            h = (h ^ (unsigned char)*c) * 16777619u;
    }
    return h ^ (uint32_t)getpid();
}

int br__sources_init(br_worker *w, bool prefer_first)
{
    uint32_t n = 1;
    for (const char *c = w->connect; *c; c++)
        n += *c == ',';
    if (n > BR_WORKER_MAX_BROKERS) {
        br__log("%u broker endpoints: at most %u", n, BR_WORKER_MAX_BROKERS);
        return BR_EINVAL;
    }
    w->links = calloc(BR_WORKER_MAX_BROKERS, sizeof(*w->links));
    w->sources = calloc(n, sizeof(*w->sources));
    if (!w->links || !w->sources)
        return BR_ENOMEM;
    const char *p = w->connect;
    for (uint32_t i = 0; i < n; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (len == 0) {
            br__log("an empty broker endpoint in \"%s\"", w->connect);
            return BR_EINVAL;
        }
        br__source *s = &w->sources[w->nsources++];
        s->w = w;
        s->index = i;
        s->endpoint = dup_n(p, len);
        if (!s->endpoint || split_name(s) != 0)
            return BR_ENOMEM;
        if (!s->host && !br__link_add(w, i, s->endpoint))
            return BR_ENOMEM;
        p = end ? end + 1 : p + len;
    }
    /* Workers started together favour different brokers with a short capacity. */
    w->link_seed = prefer_first ? 0 : start_seed();
    return 0;
}

void br__sources_release(br_worker *w)
{
    for (uint32_t i = 0; i < w->nsources; i++) {
        free(w->sources[i].endpoint);
        free(w->sources[i].host);
        free(w->sources[i].port);
    }
    free(w->sources);
    w->sources = NULL;
    w->nsources = 0;
}

bool br__link_before(const br__link *a, const br__link *b)
{
    if (a->used != b->used)
        return a->used;
    if (a->source != b->source)
        return a->source < b->source;
    return memcmp(a->addr, b->addr, sizeof(a->addr)) < 0;
}

/* The endpoints of an answer's addresses, without repeats, at most `max`, and each
 * one's sort key (br__link_before). */
static uint32_t answer_endpoints(const br__source *s, const struct addrinfo *res,
                                 addr_endpoint *out, addr_key *keys, uint32_t max)
{
    uint32_t n = 0;
    for (const struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        memset(keys[n], 0, sizeof(keys[n]));
        if (ai->ai_family == AF_INET &&
            uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip, sizeof(ip)) == 0) {
            snprintf(out[n], sizeof(out[n]), "tcp://%s:%s", ip, s->port);
            keys[n][0] = 4;
            memcpy(&keys[n][1], &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
        } else if (ai->ai_family == AF_INET6 &&
                   uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip, sizeof(ip)) == 0) {
            snprintf(out[n], sizeof(out[n]), "tcp://[%s]:%s", ip, s->port);
            keys[n][0] = 6;
            memcpy(&keys[n][1], &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
        } else {
            continue;
        }
        bool seen = false;
        for (uint32_t k = 0; k < n && !seen; k++)
            seen = strcmp(out[k], out[n]) == 0;
        n += !seen;
    }
    return n;
}

/* Makes s's links match an answer: a link for each new address, and the links of
 * addresses no longer in it leave. */
static void apply_answer(br__source *s, const struct addrinfo *res)
{
    br_worker *w = s->w;
    addr_endpoint eps[BR_WORKER_MAX_BROKERS];
    addr_key keys[BR_WORKER_MAX_BROKERS];
    uint32_t n = answer_endpoints(s, res, eps, keys, BR_WORKER_MAX_BROKERS);
    for (uint32_t i = 0; i < w->nlinks; i++) {
        br__link *l = &w->links[i];
        if (!l->used || l->source != s->index || l->leaving == BR_LEAVE_RETIRE)
            continue;
        bool kept = false;
        for (uint32_t k = 0; k < n && !kept; k++)
            kept = strcmp(l->endpoint, eps[k]) == 0;
        if (!kept) {
            br__log("%s: %s is no longer among its addresses: leaving it once its work "
                    "is done",
                    s->endpoint, l->endpoint);
            br__link_retire(l);
        }
    }
    br__link *added[BR_WORKER_MAX_BROKERS];
    uint32_t nadded = 0;
    for (uint32_t k = 0; k < n; k++) {
        bool have = false;
        for (uint32_t i = 0; i < w->nlinks && !have; i++)
            have = w->links[i].used && w->links[i].source == s->index &&
                   strcmp(w->links[i].endpoint, eps[k]) == 0;
        if (have)
            continue;
        br__log("%s: new broker address %s", s->endpoint, eps[k]);
        br__link *l = br__link_add(w, s->index, eps[k]);
        if (l) {
            memcpy(l->addr, keys[k], sizeof(l->addr));
            added[nadded++] = l;
        }
    }
    /* Opened together: each READY offers its share of what is free. */
    for (uint32_t k = 0; k < nadded; k++)
        br__link_open(added[k]);
    s->naddrs = n;
}

static void lookup(br__source *s);
static void on_resolve_tick(uv_timer_t *t);

/* Resolves every resolve_ms, or every RESOLVE_EMPTY_MS while a name has no address. */
static void set_pace(br_worker *w)
{
    if (!w->resolve_ready)
        return;
    uint64_t ms = w->resolve_ms;
    for (uint32_t i = 0; i < w->nsources; i++)
        if (w->sources[i].host && w->sources[i].naddrs == 0 && ms > RESOLVE_EMPTY_MS)
            ms = RESOLVE_EMPTY_MS;
    if (uv_timer_get_repeat(&w->resolve_timer) != ms)
        uv_timer_start(&w->resolve_timer, on_resolve_tick, ms, ms);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    br__source *s = req->data;
    br_worker *w = s->w;
    s->resolving = false;
    if (status == UV_ECANCELED || w->draining || w->closing) {
        uv_freeaddrinfo(res);
        return;
    }
    if (status != 0) {
        if (status != s->last_error)
            br__log("resolving %s: %s; keeping its %u brokers", s->endpoint, uv_strerror(status),
                    s->naddrs);
        s->last_error = status;
    } else {
        if (s->last_error)
            br__log("resolving %s works again", s->endpoint);
        s->last_error = 0;
        apply_answer(s, res);
    }
    uv_freeaddrinfo(res);
    set_pace(w);
    if (s->again) {
        s->again = false;
        lookup(s);
    }
}

/* Starts resolving s's name (once at a time). */
static void lookup(br__source *s)
{
    br_worker *w = s->w;
    if (s->resolving) {
        s->again = true;
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    s->lookup.data = s;
    int rc = uv_getaddrinfo(&w->loop, &s->lookup, on_resolved, s->host, s->port, &hints);
    if (rc != 0) {
        br__log("uv_getaddrinfo(%s): %s", s->host, uv_strerror(rc));
        return;
    }
    s->resolving = true;
}

static void on_resolve_tick(uv_timer_t *t)
{
    br_worker *w = t->data;
    for (uint32_t i = 0; i < w->nsources; i++)
        if (w->sources[i].host && !w->sources[i].resolving)
            lookup(&w->sources[i]);
}

void br__sources_start(br_worker *w)
{
    bool any = false;
    for (uint32_t i = 0; i < w->nsources; i++) {
        if (w->sources[i].host) {
            any = true;
            lookup(&w->sources[i]);
        }
    }
    if (!any)
        return;
    uv_timer_init(&w->loop, &w->resolve_timer);
    w->resolve_timer.data = w;
    w->resolve_ready = true;
    set_pace(w);
}

void br__sources_stop(br_worker *w)
{
    if (w->resolve_ready) {
        uv_close((uv_handle_t *)&w->resolve_timer, NULL);
        w->resolve_ready = false;
    }
    /* A lookup already running on the thread pool ends on its own (on_resolved then
     * ignores it); one still queued is dropped. */
    for (uint32_t i = 0; i < w->nsources; i++) {
        w->sources[i].again = false;
        if (w->sources[i].resolving)
            uv_cancel((uv_req_t *)&w->sources[i].lookup);
    }
}

void br__sources_resolve(br_worker *w, uint32_t index)
{
    if (index < w->nsources && w->sources[index].host && !w->draining && !w->closing)
        lookup(&w->sources[index]);
}
