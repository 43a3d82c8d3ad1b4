/*
 * keywatch.c - a settle timer behind an inotify watch on the authorised certificates
 * (keywatch.h says what it promises and why).
 */
#include "keywatch.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

/* Longest directory watched. */
#define KEYWATCH_PATH_MAX 1024

struct gw_keywatch {
    uv_fs_event_t event;         /* the inotify watch on dir */
    uv_timer_t timer;            /* settle_ms after the first change of a burst */
    char dir[KEYWATCH_PATH_MAX]; /* the directory watched */
    uint64_t settle_ms;          /* see GW_KEYWATCH_SETTLE_MS */
    void (*changed)(void *arg);  /* the owner's reload */
    void *arg;                   /* its argument */
    int handles;                 /* handles not yet closed: freed at 0 */
    bool broken;                 /* the watch could not be made again (logged once) */
};

static void on_settled(uv_timer_t *timer);

static void on_change(uv_fs_event_t *event, const char *filename, int events, int status)
{
    gw_keywatch *w = event->data;
    (void)filename;
    (void)events;
    if (status < 0) {
        gw_log(GW_LOG_WARN, "gateway", "watching %s failed: %s", w->dir, uv_strerror(status));
        return;
    }
    if (!uv_is_active((uv_handle_t *)&w->timer))
        uv_timer_start(&w->timer, on_settled, w->settle_ms, 0);
}

/* (Re)makes the inotify watch on w->dir.  0 or a negative libuv error. */
static int watch(gw_keywatch *w)
{
    uv_fs_event_stop(&w->event);
    return uv_fs_event_start(&w->event, on_change, w->dir, 0);
}

static void on_settled(uv_timer_t *timer)
{
    gw_keywatch *w = timer->data;
    /* Watch again before the reload reads: nothing that changes after the read goes
     * unnoticed, and a directory made anew is followed. */
    int rc = watch(w);
    if (rc < 0 && !w->broken)
        gw_log(GW_LOG_WARN, "gateway",
               "cannot watch %s any more (%s): send SIGHUP to reload the worker keys", w->dir,
               uv_strerror(rc));
    w->broken = rc < 0;
    w->changed(w->arg);
}

gw_keywatch *gw__keywatch_new(uv_loop_t *loop, const char *path, uint64_t settle_ms,
                              void (*changed)(void *arg), void *arg)
{
    struct stat st;
    if (strlen(path) >= KEYWATCH_PATH_MAX) {
        gw_log(GW_LOG_WARN, "gateway", "not watching the worker keys: path too long");
        return NULL;
    }
    gw_keywatch *w = calloc(1, sizeof(*w));
    if (!w) {
        gw_log(GW_LOG_ERROR, "gateway", "watching the worker keys: out of memory");
        return NULL;
    }
    snprintf(w->dir, sizeof(w->dir), "%s", path);
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        /* One certificate file: its directory, where a replacement would be renamed. */
        char *slash = strrchr(w->dir, '/');
        if (!slash)
            snprintf(w->dir, sizeof(w->dir), ".");
        else if (slash == w->dir)
            w->dir[1] = '\0';
        else
            *slash = '\0';
    }
    w->settle_ms = settle_ms;
    w->changed = changed;
    w->arg = arg;
    uv_fs_event_init(loop, &w->event);
    uv_timer_init(loop, &w->timer);
    w->event.data = w->timer.data = w;
    w->handles = 2;
    int rc = watch(w);
    if (rc < 0) {
        gw_log(GW_LOG_WARN, "gateway",
               "cannot watch %s (%s): send SIGHUP to reload the worker keys", w->dir,
               uv_strerror(rc));
        gw__keywatch_close(&w);
        return NULL;
    }
    gw_log(GW_LOG_INFO, "gateway", "watching %s: worker keys are reloaded when it changes", w->dir);
    return w;
}

static void on_closed(uv_handle_t *handle)
{
    gw_keywatch *w = handle->data;
    if (--w->handles == 0)
        free(w);
}

void gw__keywatch_close(gw_keywatch **self_p)
{
    gw_keywatch *w = *self_p;
    if (!w)
        return;
    *self_p = NULL;
    uv_close((uv_handle_t *)&w->event, on_closed);
    uv_close((uv_handle_t *)&w->timer, on_closed);
}
