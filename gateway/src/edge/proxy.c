/*
 * proxy.c - the client's address, behind proxies the operator trusts.
 *
 * The TCP peer is the client unless it is a trusted proxy (--trusted-proxies, a list
 * of addresses and CIDRs).  Then the Forwarded header (RFC 7239, its for= elements)
 * or, without one, X-Forwarded-For is read from the right: each hop that is itself a
 * trusted proxy is skipped, and the first that is not is the client.  A header sent
 * by an untrusted peer is never read, so a client cannot choose its own address
 * (and with it its rate-limit bucket or its line in the access log).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge_int.h"

/* Hops read from forwarding headers at most; a longer chain is cut on the left. */
#define PROXY_MAX_HOPS 32

int gw__cidr_parse(const char *text, size_t len, edge_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (len == 0 || len >= sizeof(buf))
        return BR_EINVAL;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        return BR_EINVAL;
    }
    if (slash) {
        char *end;
        unsigned long bits = strtoul(slash + 1, &end, 10);
        if (end == slash + 1 || *end || bits > out->bits)
            return BR_EINVAL;
        out->bits = (unsigned)bits;
    }
    return 0;
}

bool gw__cidr_contains(const edge_cidr *c, int family, const uint8_t *addr)
{
    if (c->family != family)
        return false;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

int gw__proxy_init(gw_edge *e, char *why, size_t cap)
{
    const char *list = e->cfg.trusted_proxies ? e->cfg.trusted_proxies : "";
    size_t n = 0;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    if (!*list)
        return 0;
    e->proxies = calloc(n + 1, sizeof(*e->proxies));
    if (!e->proxies) {
        snprintf(why, cap, "--trusted-proxies: out of memory");
        return -1;
    }
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        if (p == start)
            continue;
        if (gw__cidr_parse(start, (size_t)(p - start), &e->proxies[e->nproxies]) != 0) {
            snprintf(why, cap, "--trusted-proxies: bad address or CIDR \"%.*s\"", (int)(p - start),
                     start);
            return -1;
        }
        e->nproxies++;
    }
    return 0;
}

static bool trusted(const gw_edge *e, int family, const uint8_t *addr)
{
    for (size_t i = 0; i < e->nproxies; i++)
        if (gw__cidr_contains(&e->proxies[i], family, addr))
            return true;
    return false;
}

/* One hop of a forwarding header, parsed.  False when it is not an address (an
 * obfuscated node, "unknown", garbage). */
static bool hop_parse(const char *s, size_t n, int *family, uint8_t *addr)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    char buf[INET6_ADDRSTRLEN + 8];
    if (n == 0 || n >= sizeof(buf))
        return false;
    if (s[0] == '[') { /* "[v6]" or "[v6]:port" */
        const char *close = memchr(s, ']', n);
        if (!close)
            return false;
        n = (size_t)(close - s - 1);
        s++;
    } else if (memchr(s, ':', n) && memchr(s, '.', n)) { /* "v4:port" */
        n = (size_t)((const char *)memchr(s, ':', n) - s);
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

typedef struct hop {
    const char *s; /* the hop's text */
    size_t n;      /* its bytes */
} hop;

/* Collects the hops of every header `name` in order (the for= values of Forwarded). */
static size_t collect(const gw_req *req, const char *name, bool forwarded, hop *out, size_t max)
{
    size_t nh = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const gw_header *h = &req->headers[i];
        if (strcmp(h->name, name) != 0)
            continue;
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            const char *start = p;
            while (p < end && *p != ',')
                p++;
            const char *s = start;
            size_t n = (size_t)(p - start);
            if (forwarded) { /* the for= parameter of this element, if any */
                s = NULL;
                for (const char *q = start; q + 4 <= p; q++) {
                    if ((q == start || q[-1] == ';' || q[-1] == ' ') &&
                        strncasecmp(q, "for=", 4) == 0) {
                        s = q + 4;
                        const char *e = s;
                        while (e < p && *e != ';')
                            e++;
                        n = (size_t)(e - s);
                        break;
                    }
                }
            }
            if (s) {
                if (nh == max) { /* keep the rightmost `max` */
                    memmove(out, out + 1, (max - 1) * sizeof(*out));
                    nh--;
                }
                out[nh++] = (hop){s, n};
            }
            if (p < end)
                p++;
        }
    }
    return nh;
}

/* The address as text.  IPv4, every request's case here, is written by hand: glibc's
 * inet_ntop formats it with sprintf, about 1,700 instructions a request. */
static void addr_text(int family, const uint8_t *addr, char *out, size_t cap)
{
    if (family == AF_INET && cap >= sizeof("255.255.255.255")) {
        char *p = out;
        for (int i = 0; i < 4; i++) {
            unsigned v = addr[i];
            if (v >= 100)
                *p++ = (char)('0' + v / 100);
            if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
            *p++ = (char)('0' + v % 10);
            *p++ = i < 3 ? '.' : '\0';
        }
        return;
    }
    if (!inet_ntop(family, addr, out, (socklen_t)cap))
        snprintf(out, cap, "-");
}

void gw__proxy_client(gw_edge *e, const gw_req *req, edge_req *er)
{
    struct sockaddr_storage peer;
    if (gw_req_peer(req, &peer) != 0) {
        snprintf(er->client, sizeof(er->client), "-");
        return;
    }
    int family = peer.ss_family;
    uint8_t addr[16];
    if (family == AF_INET) {
        memcpy(addr, &((struct sockaddr_in *)&peer)->sin_addr, 4);
    } else if (family == AF_INET6) {
        memcpy(addr, &((struct sockaddr_in6 *)&peer)->sin6_addr, 16);
    } else {
        snprintf(er->client, sizeof(er->client), "-");
        return;
    }
    if (e->nproxies && trusted(e, family, addr)) {
        hop hops[PROXY_MAX_HOPS];
        size_t nh = collect(req, "forwarded", true, hops, PROXY_MAX_HOPS);
        if (nh == 0)
            nh = collect(req, "x-forwarded-for", false, hops, PROXY_MAX_HOPS);
        while (nh > 0) {
            int f;
            uint8_t a[16];
            if (!hop_parse(hops[nh - 1].s, hops[nh - 1].n, &f, a))
                break; /* not an address: the last trusted hop is all we know */
            family = f;
            memcpy(addr, a, sizeof(a));
            if (!trusted(e, f, a))
                break;
            nh--;
        }
    }
    addr_text(family, addr, er->client, sizeof(er->client));
}
