/*
 * zap.h - worker authentication: the gateway's CURVE certificates and its ZAP handler.
 *
 * Keys are CZMQ certificates (barista/curve.h): the broker's own secret certificate,
 * and the authorised workers' public certificates, held in a zcertstore.  A worker
 * certificate's "services" metadata says which services its holder may serve ("a,b"
 * or "*"); one without it may serve none.  The set is read at start and again on
 * gw_curve_reload (SIGHUP); a reload that fails keeps the old set.
 *
 * With CURVE on, the broker's ROUTER is a CURVE server and libzmq asks a ZAP handler
 * (ZeroMQ RFC 27) about every connecting peer before any of its messages reach the
 * broker.  Ours is a REP socket bound to inproc://zeromq.zap.01 in the broker's
 * ZeroMQ context and driven by the gateway's loop (br_zsock), not CZMQ's zauth actor:
 * no thread of its own, no CZMQ context or signal handlers, refusals logged through
 * gw_log at most once per GW_ZAP_LOG_INTERVAL_MS, and the certificate set swapped on
 * the loop (docs/broker.md says why).  It answers 200 to a CURVE client whose public
 * key is authorised, with the key (Z85) as the connection's User-Id - the broker reads
 * it on READY to check the services - and 400 to everything else.  Peers that do not
 * speak CURVE at all never get that far: libzmq drops them in the greeting.
 */
#ifndef BARISTA_GW_ZAP_H
#define BARISTA_GW_ZAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <barista/curve.h>
#include <barista/proto.h>

/* The endpoint libzmq sends ZAP requests to (RFC 27). */
#define GW_ZAP_ENDPOINT "inproc://zeromq.zap.01"
/* ZAP domain of the broker's socket. */
#define GW_ZAP_DOMAIN "barista"
/* Refusals are logged at most once per this period; the others are counted. */
#define GW_ZAP_LOG_INTERVAL_MS 1000
/* Most certificates read from the authorised directory. */
#define GW_CURVE_MAX_CERTS 4096
/* Longest path of the authorised directory. */
#define GW_CURVE_PATH_MAX 1024

struct _zcertstore_t; /* CZMQ's certificate store (czmq.h) */

/* The gateway's CURVE material: its key pair and the workers' certificates. */
typedef struct gw_curve {
    bool on;                            /* authentication is on (both options given) */
    br_curve_keypair server;            /* the broker's key pair */
    struct _zcertstore_t *clients;      /* authorised worker certificates, owned */
    size_t nclients;                    /* certificates in clients */
    char authorized[GW_CURVE_PATH_MAX]; /* where they were read from (for reloads) */
    bool self_authorised;               /* the broker's own key serves any service (--local) */
    bool reloading;                     /* a gw_curve_reload is running */
} gw_curve;

/* Loads the key pair from secret_key_file (a secret certificate) and the authorised
 * certificates from `authorized` (a directory of public certificates, or one file).
 * Both "" leaves authentication off; one without the other is refused, since CURVE
 * without authorisation would let any key in.  0, or -1 after logging the reason.
 * Release with gw_curve_release. */
int gw_curve_load(gw_curve *out, const char *secret_key_file, const char *authorized);

/* Reads the authorised certificates again (SIGHUP) on the loop's thread pool - the
 * loop never waits on the disk - and swaps them in on the loop; on any error the old
 * set stays and the reason is logged.  done(arg, rc) runs on the loop afterwards, rc
 * 0 when the new set is in place.  0 when the reload started; BR_EFULL (a reload is
 * running already), BR_EINVAL (authentication is off) or BR_ENOMEM. */
int gw_curve_reload(gw_curve *c, uv_loop_t *loop, void (*done)(void *arg, int rc), void *arg);

/* Local mode: authorises the broker's own public key for every service, in this set
 * and every reloaded one (local workers hold the gateway's key pair).  0 or -1. */
int gw_curve_authorise_self(gw_curve *c);

/* Wipes the secret key and frees the certificates. */
void gw_curve_release(gw_curve *c);

/* True when the Z85 key `key` is authorised. */
bool gw_curve_known(const gw_curve *c, const char *key);

/* The name for log lines of an authorised key (its "name" metadata, or the key). */
const char *gw_curve_name(const gw_curve *c, const char *key);

/* 0 when the holder of `key` may serve `service`; BR_EVALUE with a one-line reason in
 * why when the key is unknown or its certificate does not allow the service. */
int gw_curve_may_serve(const gw_curve *c, const char *key, br_str service, char *why, size_t cap);

typedef struct gw_zap gw_zap;

/* Binds the ZAP handler in zctx and starts answering on loop; `curve` must outlive
 * it (reloads are seen at once).  Call before any socket of zctx binds, or early peers
 * would pass unchecked.  Caller owns the result (free it with gw_zap_shutdown); NULL
 * on failure (logged). */
gw_zap *gw_zap_new(uv_loop_t *loop, void *zctx, const gw_curve *curve);

/* Peers refused so far. */
uint64_t gw_zap_refused(const gw_zap *self);

/* Refusal lines logged so far (at most one per GW_ZAP_LOG_INTERVAL_MS). */
uint64_t gw_zap_logged(const gw_zap *self);

/* Closes the socket at once (so that zmq_ctx_term may proceed) and the loop handles
 * asynchronously; done(arg) runs when they are closed, after which self is freed. */
void gw_zap_shutdown(gw_zap *self, void (*done)(void *arg), void *arg);

#endif /* BARISTA_GW_ZAP_H */
