/*
 * zap.h - worker authentication: the gateway's CURVE keys and its ZAP handler.
 *
 * With CURVE on, the broker's ROUTER is a CURVE server and libzmq asks a ZAP handler
 * (ZeroMQ RFC 27) about every connecting peer before any of its messages reach the
 * broker.  Ours is a REP socket bound to inproc://zeromq.zap.01 in the broker's
 * ZeroMQ context and driven by the gateway's loop (br_zsock): no thread of its own,
 * and an answer never waits on anything.  It says 200 to a CURVE client whose public
 * key is authorised and 400 to everything else, logging refusals at most once per
 * GW_ZAP_LOG_INTERVAL_MS.  Peers that do not speak CURVE at all never get that far:
 * libzmq drops them in the greeting.
 */
#ifndef BARISTA_GW_ZAP_H
#define BARISTA_GW_ZAP_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include <barista/curve.h>

/* The endpoint libzmq sends ZAP requests to (RFC 27). */
#define GW_ZAP_ENDPOINT "inproc://zeromq.zap.01"
/* ZAP domain of the broker's socket. */
#define GW_ZAP_DOMAIN "barista"
/* Refusals are logged at most once per this period; the others are counted. */
#define GW_ZAP_LOG_INTERVAL_MS 1000

/* The gateway's CURVE material: its key pair and the workers' authorised keys. */
typedef struct gw_curve {
    bool on;                  /* authentication is on (both options given) */
    br_curve_keypair server;  /* the broker's key pair */
    br_curve_keyset *clients; /* authorised worker public keys, owned */
} gw_curve;

/* Loads the key pair from secret_key_file and the authorised keys from authorized
 * (a file or a directory).  Both "" leaves authentication off; one without the other
 * is refused, since CURVE without authorisation would let any key in.  0, or -1 after
 * logging the reason.  Release with gw_curve_release. */
int gw_curve_load(gw_curve *out, const char *secret_key_file, const char *authorized);

/* Wipes the secret key and frees the key set. */
void gw_curve_release(gw_curve *c);

typedef struct gw_zap gw_zap;

/* Binds the ZAP handler in zctx and starts answering on loop; `keys` must outlive it.
 * Call before any socket of zctx binds, or early peers would pass unchecked.  Caller
 * owns the result (free it with gw_zap_shutdown); NULL on failure (logged). */
gw_zap *gw_zap_new(uv_loop_t *loop, void *zctx, const br_curve_keyset *keys);

/* Peers refused so far. */
uint64_t gw_zap_refused(const gw_zap *self);

/* Refusal lines logged so far (at most one per GW_ZAP_LOG_INTERVAL_MS). */
uint64_t gw_zap_logged(const gw_zap *self);

/* Closes the socket at once (so that zmq_ctx_term may proceed) and the loop handles
 * asynchronously; done(arg) runs when they are closed, after which self is freed. */
void gw_zap_shutdown(gw_zap *self, void (*done)(void *arg), void *arg);

#endif /* BARISTA_GW_ZAP_H */
