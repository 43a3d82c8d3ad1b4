/*
 * m2handler — the smallest useful Mongrel2 handler, for the comparison
 * benchmark only (tests/bench/compare/run.sh).
 *
 * Mongrel2 hands every request to its handlers on a ZeroMQ PUSH socket; the
 * handler PULLs it, and answers on a PUB socket that Mongrel2 SUBscribes to.
 *
 * Request (one ZeroMQ frame):
 *     SENDER_UUID SP CONN_ID SP PATH SP HLEN ":" HEADERS "," BLEN ":" BODY ","
 * HEADERS is JSON or a tnetstring dict depending on the handler's protocol.
 * A client disconnect arrives as a request whose METHOD header is "JSON" with
 * a body {"type":"disconnect"}: it must not be answered.
 *
 * Reply (one ZeroMQ frame):
 *     SENDER_UUID SP LEN ":" CONN_IDS "," SP RAW_HTTP_RESPONSE
 * CONN_IDS is a space-separated list; we always answer the one requester.
 * Mongrel2 writes the raw bytes to the client; the connection stays open
 * (keep-alive) because we send a complete HTTP/1.1 response with a length.
 *
 * Every path answers 200 {"message":"hello"}: the benchmark routes only
 * /hello here.
 *
 * usage: m2handler PULL_ENDPOINT PUB_ENDPOINT IDENTITY
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const char HTTP_HELLO[] = "HTTP/1.1 200 OK\r\n"
                                 "Content-Type: application/json\r\n"
                                 "Content-Length: 19\r\n"
                                 "\r\n"
                                 "{\"message\":\"hello\"}";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Find the next space in [p, end); NULL if none. */
static const char *next_space(const char *p, const char *end)
{
    const char *s = memchr(p, ' ', (size_t)(end - p));
    return s;
}

/* Parse a netstring length "123:" at p; returns pointer after ':' or NULL. */
static const char *netstring(const char *p, const char *end, size_t *len)
{
    size_t n = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++digits > 9)
            return NULL;
        n = n * 10 + (size_t)(*p - '0');
        p++;
    }
    if (digits == 0 || p >= end || *p != ':')
        return NULL;
    p++;
    if ((size_t)(end - p) < n + 1 || p[n] != ',')
        return NULL;
    *len = n;
    return p;
}

static int contains(const char *hay, size_t hlen, const char *needle)
{
    size_t nlen = strlen(needle);
    if (nlen > hlen)
        return 0;
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0)
            return 1;
    return 0;
}

/* A disconnect notice: METHOD is "JSON" (in JSON or tnetstring headers). */
static int is_disconnect(const char *headers, size_t len)
{
    return contains(headers, len, "\"METHOD\":\"JSON\"") ||
           contains(headers, len, "6:METHOD,4:JSON,");
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PULL_ENDPOINT PUB_ENDPOINT IDENTITY\n", argv[0]);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    void *ctx = zmq_ctx_new();
    void *in = zmq_socket(ctx, ZMQ_PULL);
    void *out = zmq_socket(ctx, ZMQ_PUB);
    int zero = 0;
    zmq_setsockopt(in, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(out, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(out, ZMQ_IDENTITY, argv[3], strlen(argv[3]));
    if (zmq_connect(in, argv[1]) != 0 || zmq_connect(out, argv[2]) != 0) {
        fprintf(stderr, "m2handler: connect: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }

    char reply[512];
    unsigned long answered = 0, skipped = 0;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (!stop_requested) {
        int rc = zmq_msg_recv(&msg, in, 0);
        if (rc < 0) {
            if (zmq_errno() == EINTR)
                continue;
            fprintf(stderr, "m2handler: recv: %s\n", zmq_strerror(zmq_errno()));
            break;
        }
        const char *p = zmq_msg_data(&msg);
        const char *end = p + zmq_msg_size(&msg);

        const char *s1 = next_space(p, end);                  /* after UUID */
        const char *s2 = s1 ? next_space(s1 + 1, end) : NULL; /* after ID */
        const char *s3 = s2 ? next_space(s2 + 1, end) : NULL; /* after PATH */
        size_t hlen = 0;
        const char *hdr = s3 ? netstring(s3 + 1, end, &hlen) : NULL;
        if (!hdr || s1 == p || s2 == s1 + 1) {
            skipped++;
            continue;
        }
        if (is_disconnect(hdr, hlen)) {
            skipped++;
            continue;
        }
        int uuid_len = (int)(s1 - p);
        int id_len = (int)(s2 - (s1 + 1));
        int n = snprintf(reply, sizeof reply, "%.*s %d:%.*s, %s", uuid_len, p, id_len, id_len,
                         s1 + 1, HTTP_HELLO);
        if (n < 0 || (size_t)n >= sizeof reply) {
            skipped++;
            continue;
        }
        while (zmq_send(out, reply, (size_t)n, 0) < 0 && zmq_errno() == EINTR && !stop_requested)
            ;
        answered++;
    }
    zmq_msg_close(&msg);
    fprintf(stderr, "m2handler: answered %lu, skipped %lu\n", answered, skipped);
    zmq_close(in);
    zmq_close(out);
    zmq_ctx_term(ctx);
    return 0;
}
