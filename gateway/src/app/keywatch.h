/*
 * keywatch.h - noticing that the authorised worker certificates changed on disk.
 *
 * A key added next to a running gateway - compose's `keys` service authorising the
 * pool of a service added with a compose fragment, an operator copying a certificate
 * in - should be honoured without a restart and without a signal to send.  The watch
 * is an inotify watch (uv_fs_event) on the --curve-authorized-keys directory, or on
 * the directory holding it when it is one file.  The first change starts a timer of
 * `settle_ms`; when it fires `changed(arg)` runs, and main.c reloads the certificates
 * as on SIGHUP.  Changes while the timer runs are covered by that reload, which reads
 * the directory after the timer; a change after it starts the timer again.  Every
 * change counts, hidden names included: Kubernetes swaps a secret's files by renaming
 * its `..data` link.
 *
 * The watch is made again each time the timer fires, so a directory that was
 * replaced (removed and made anew) is followed.  Where inotify says nothing (network
 * file systems), SIGHUP still reloads.
 */
#ifndef BARISTA_GW_KEYWATCH_H
#define BARISTA_GW_KEYWATCH_H

#include <stdint.h>

#include <uv.h>

/* How long after the first change the certificates are read: long enough for a
 * writer to finish a few files, short enough that a new worker waits no longer. */
#define GW_KEYWATCH_SETTLE_MS 500u

typedef struct gw_keywatch gw_keywatch;

/* Watches `path` (a directory, or a file: then its directory) on loop; changed(arg)
 * runs on the loop settle_ms after the first change of a burst.  Caller owns the
 * result (gw__keywatch_close); NULL when the watch cannot be made (logged). */
gw_keywatch *gw__keywatch_new(uv_loop_t *loop, const char *path, uint64_t settle_ms,
                              void (*changed)(void *arg), void *arg);

/* Stops watching; changed() is not called again.  The handles close asynchronously
 * and the watch frees itself then.  Safe with NULL; NULLs *self_p. */
void gw__keywatch_close(gw_keywatch **self_p);

#endif /* BARISTA_GW_KEYWATCH_H */
