/*
 * supervisor.c - spawns worker processes and restarts them when they exit.
 *
 * Each supervised process is a slot holding its command line, a uv_process_t for the
 * current child and a uv_timer_t for the pending restart.  A child's life:
 *
 *     spawn -> (exit) -> close process handle -> restart timer -> spawn ...
 *
 * The restart is scheduled from the process handle's close callback, so a slot never
 * re-initialises a handle libuv still holds.  Stopping closes every restart timer,
 * signals the children and waits for their exits; done() runs when the last handle
 * has closed, counted in open_handles.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "barista/proto.h"
#include "log.h"
#include "supervisor.h"

extern char **environ;

/* One supervised process. */
typedef struct gw_proc {
    gw_supervisor *sup;     /* owner */
    char *label;            /* log label, e.g. "io-worker" */
    char **argv;            /* NULL-terminated command line */
    char **env;             /* NULL-terminated environment; NULL inherits the gateway's */
    uv_process_t process;   /* the current child; valid while process_open */
    uv_timer_t restart;     /* fires the next spawn */
    bool process_open;      /* process is initialised and not yet closed */
    bool running;           /* the child is alive (its exit not yet seen) */
    bool crash_looping;     /* GW_SUPERVISOR_LOOP_EXITS exits within the window */
    bool abandoned;         /* the first spawn failed: never restarted */
    int pid;                /* current or last pid */
    uint64_t started_ms;    /* loop time of the latest spawn */
    uint64_t backoff_ms;    /* delay the next restart will use */
    uint64_t last_delay_ms; /* delay of the latest restart scheduled */
    uint64_t restarts;      /* spawns after the first */
    int64_t exit_status;    /* the latest exit's status (-1: the spawn failed) */
    int term_signal;        /* the latest exit's signal, 0 if none */
    uint64_t exits[GW_SUPERVISOR_LOOP_EXITS]; /* loop times of the latest exits, a ring */
    unsigned nexits; /* exits recorded so far (ring index = nexits % size) */
} gw_proc;

struct gw_supervisor {
    uv_loop_t *loop;       /* the caller's loop */
    gw_proc **procs;       /* slots, in the order added; pointers because handles */
    unsigned nprocs;       /*   must not move */
    unsigned cap;          /* allocated slots */
    unsigned open_handles; /* initialised handles not yet closed */
    bool stopping;         /* gw_supervisor_shutdown() was called */
    bool grace_open;       /* grace is initialised and not yet closing */
    uv_timer_t grace;      /* SIGKILL deadline while stopping */
    void (*done)(void *);  /* stop's completion callback */
    void *done_arg;        /* its argument */
};

/* ---------------------------------------------------------------------------------- */
/* Copies.                                                                             */

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* The length of a variable's name in "NAME=value" (the whole string if no '='). */
static size_t env_name_len(const char *s)
{
    const char *eq = strchr(s, '=');
    return eq ? (size_t)(eq - s) : strlen(s);
}

static bool env_overridden(const char *var, const char *const *extra)
{
    size_t n = env_name_len(var);
    for (size_t i = 0; extra[i]; i++)
        if (env_name_len(extra[i]) == n && strncmp(var, extra[i], n) == 0)
            return true;
    return false;
}

/* A NULL-terminated copy of base (variables that extra sets again left out) followed by
 * extra; either list may be NULL.  NULL when out of memory. */
static char **strv_join(const char *const *base, const char *const *extra)
{
    size_t nbase = 0, nextra = 0;
    while (base && base[nbase])
        nbase++;
    while (extra && extra[nextra])
        nextra++;
    char **v = calloc(nbase + nextra + 1, sizeof *v);
    if (!v)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < nbase; i++) {
        if (extra && env_overridden(base[i], extra))
            continue;
        if (!(v[n++] = strdup(base[i])))
            goto fail;
    }
    for (size_t i = 0; i < nextra; i++)
        if (!(v[n++] = strdup(extra[i])))
            goto fail;
    return v;
fail:
    strv_free(v);
    return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Handle bookkeeping.                                                                 */

static void grace_closed(uv_handle_t *handle);

/* Called from every close callback: finishes a stop once nothing is left open. */
static void handle_closed(gw_supervisor *self)
{
    self->open_handles--;
    if (!self->stopping)
        return;
    bool any_process = false;
    for (unsigned i = 0; i < self->nprocs; i++)
        any_process |= self->procs[i]->process_open;
    if (!any_process && self->grace_open) {
        self->grace_open = false;
        uv_close((uv_handle_t *)&self->grace, grace_closed);
    }
    if (self->open_handles == 0 && self->done) {
        void (*done)(void *) = self->done;
        self->done = NULL;
        done(self->done_arg);
    }
}

static void grace_closed(uv_handle_t *handle)
{
    handle_closed(handle->data);
}

static void restart_timer_closed(uv_handle_t *handle)
{
    gw_proc *proc = handle->data;
    handle_closed(proc->sup);
}

/* ---------------------------------------------------------------------------------- */
/* The restart cycle.                                                                  */

static int spawn(gw_proc *proc);

/* Notes an exit (or failed spawn) at `now`; marks the slot crash looping when it is the
 * GW_SUPERVISOR_LOOP_EXITS-th within the window, logging loudly the first time. */
static void record_exit(gw_proc *proc, uint64_t now, int64_t status, int signal)
{
    /* A process that stayed up long enough earns a fresh start. */
    if (now - proc->started_ms >= GW_SUPERVISOR_STABLE_MS) {
        proc->backoff_ms = GW_SUPERVISOR_BACKOFF_MIN_MS;
        proc->crash_looping = false;
    }
    /* Exit k lives in slot k % size, so after recording it the oldest of the latest
     * GW_SUPERVISOR_LOOP_EXITS exits sits in slot nexits % size. */
    proc->exits[proc->nexits % GW_SUPERVISOR_LOOP_EXITS] = now;
    proc->nexits++;
    bool looping =
        proc->nexits >= GW_SUPERVISOR_LOOP_EXITS &&
        now - proc->exits[proc->nexits % GW_SUPERVISOR_LOOP_EXITS] < GW_SUPERVISOR_LOOP_WINDOW_MS;
    if (looping && !proc->crash_looping) {
        proc->crash_looping = true;
        gw_log(GW_LOG_ERROR, "supervisor",
               "*** %s (pid %d) is CRASH LOOPING: %u exits within %u s, last "
               "exit status %lld signal %d, %llu restarts; retrying every %u s ***",
               proc->label, proc->pid, GW_SUPERVISOR_LOOP_EXITS,
               GW_SUPERVISOR_LOOP_WINDOW_MS / 1000, (long long)status, signal,
               (unsigned long long)proc->restarts, GW_SUPERVISOR_BACKOFF_MAX_MS / 1000);
    }
}

static void on_restart(uv_timer_t *timer)
{
    gw_proc *proc = timer->data;
    proc->restarts++;
    spawn(proc);
}

static void process_closed(uv_handle_t *handle)
{
    gw_proc *proc = handle->data;
    gw_supervisor *self = proc->sup;
    proc->process_open = false;
    if (!self->stopping && !proc->abandoned) {
        uint64_t delay = proc->crash_looping ? GW_SUPERVISOR_BACKOFF_MAX_MS : proc->backoff_ms;
        proc->last_delay_ms = delay;
        proc->backoff_ms = proc->backoff_ms * 2 > GW_SUPERVISOR_BACKOFF_MAX_MS
                               ? GW_SUPERVISOR_BACKOFF_MAX_MS
                               : proc->backoff_ms * 2;
        uv_timer_start(&proc->restart, on_restart, delay, 0);
    }
    handle_closed(self);
}

static void on_child_exit(uv_process_t *process, int64_t status, int signal)
{
    gw_proc *proc = process->data;
    proc->running = false;
    proc->exit_status = status;
    proc->term_signal = signal;
    if (!proc->sup->stopping) {
        gw_log(GW_LOG_WARN, "supervisor", "%s (pid %d) exited with status %lld, signal %d",
               proc->label, proc->pid, (long long)status, signal);
        record_exit(proc, uv_now(proc->sup->loop), status, signal);
    }
    uv_close((uv_handle_t *)process, process_closed);
}

/* Starts the slot's child.  On failure the handle is closed like after an exit, so a
 * restart follows (unless the slot is abandoned). */
static int spawn(gw_proc *proc)
{
    gw_supervisor *self = proc->sup;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    uv_process_options_t options = {
        .exit_cb = on_child_exit,
        .file = proc->argv[0],
        .args = proc->argv,
        .env = proc->env,
        .stdio_count = 3,
        .stdio = stdio,
        /* Own session: a terminal's Ctrl-C reaches the gateway, which stops the
         * workers in order (GOODBYE, drain, SIGTERM); BARISTA_EXIT_WITH_PARENT makes
         * them exit if the gateway dies without doing so. */
        .flags = UV_PROCESS_DETACHED,
    };
    int err = uv_spawn(self->loop, &proc->process, &options);
    /* uv_spawn initialises the handle even when it fails: it must be closed either way. */
    proc->process.data = proc;
    proc->process_open = true;
    self->open_handles++;
    proc->started_ms = uv_now(self->loop);
    if (err != 0) {
        gw_log(GW_LOG_ERROR, "supervisor", "uv_spawn(%s) for %s failed: %s", proc->argv[0],
               proc->label, uv_strerror(err));
        proc->exit_status = -1;
        proc->term_signal = 0;
        record_exit(proc, proc->started_ms, -1, 0);
        uv_close((uv_handle_t *)&proc->process, process_closed);
        return BR_EIO;
    }
    proc->running = true;
    proc->pid = proc->process.pid;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Public API.                                                                         */

gw_supervisor *gw_supervisor_new(uv_loop_t *loop)
{
    gw_supervisor *self = calloc(1, sizeof *self);
    if (self)
        self->loop = loop;
    return self;
}

/* A new slot for label/argv/env, its restart timer initialised; NULL when out of memory. */
static gw_proc *proc_new(gw_supervisor *self, const char *label, const char *const *argv,
                         const char *const *env_extra)
{
    gw_proc *proc = calloc(1, sizeof *proc);
    if (!proc)
        return NULL;
    proc->sup = self;
    proc->backoff_ms = GW_SUPERVISOR_BACKOFF_MIN_MS;
    proc->label = strdup(label);
    proc->argv = strv_join(argv, NULL);
    bool extra = env_extra && env_extra[0];
    proc->env = extra ? strv_join((const char *const *)environ, env_extra) : NULL;
    if (!proc->label || !proc->argv || (extra && !proc->env)) {
        free(proc->label);
        strv_free(proc->argv);
        strv_free(proc->env);
        free(proc);
        return NULL;
    }
    uv_timer_init(self->loop, &proc->restart);
    proc->restart.data = proc;
    self->open_handles++;
    return proc;
}

int gw_supervisor_add(gw_supervisor *self, const char *label, const char *const *argv,
                      const char *const *env_extra, unsigned count)
{
    if (self->stopping || !argv || !argv[0])
        return BR_EINVAL;
    if (count > GW_SUPERVISOR_MAX_PROCS - self->nprocs)
        return BR_ELIMIT;
    if (self->nprocs + count > self->cap) {
        gw_proc **grown = realloc(self->procs, (self->nprocs + count) * sizeof *grown);
        if (!grown)
            return BR_ENOMEM;
        self->procs = grown;
        self->cap = self->nprocs + count;
    }
    for (unsigned i = 0; i < count; i++) {
        gw_proc *proc = proc_new(self, label, argv, env_extra);
        if (!proc)
            return BR_ENOMEM;
        self->procs[self->nprocs++] = proc;
        if (spawn(proc) != 0) {
            proc->abandoned = true;
            return BR_EIO;
        }
    }
    return 0;
}

void gw_supervisor_stats_get(const gw_supervisor *self, gw_supervisor_stats *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < self->nprocs; i++) {
        const gw_proc *proc = self->procs[i];
        out->running += proc->running;
        out->crash_looping += proc->crash_looping;
        out->restarts += proc->restarts;
    }
}

unsigned gw_supervisor_count(const gw_supervisor *self)
{
    return self->nprocs;
}

int gw_supervisor_proc_get(const gw_supervisor *self, unsigned index, gw_supervisor_proc_info *out)
{
    if (index >= self->nprocs)
        return BR_ENOTFOUND;
    const gw_proc *proc = self->procs[index];
    out->label = proc->label;
    out->pid = proc->pid;
    out->running = proc->running;
    out->crash_looping = proc->crash_looping;
    out->restarts = proc->restarts;
    out->last_delay_ms = proc->last_delay_ms;
    out->exit_status = proc->exit_status;
    out->term_signal = proc->term_signal;
    return 0;
}

/* Sends sig to every live child; a child that exited a moment ago (ESRCH) is fine. */
static void signal_all(gw_supervisor *self, int sig)
{
    for (unsigned i = 0; i < self->nprocs; i++) {
        gw_proc *proc = self->procs[i];
        if (!proc->running)
            continue;
        if (sig == SIGKILL)
            gw_log(GW_LOG_WARN, "supervisor", "%s (pid %d) ignored SIGTERM; sending SIGKILL",
                   proc->label, proc->pid);
        int err = uv_process_kill(&proc->process, sig);
        if (err != 0 && err != UV_ESRCH)
            gw_log(GW_LOG_ERROR, "supervisor", "uv_process_kill(%d, %d) failed: %s", proc->pid, sig,
                   uv_strerror(err));
    }
}

void gw_supervisor_signal(gw_supervisor *self, int sig)
{
    signal_all(self, sig);
}

static void on_grace_expired(uv_timer_t *timer)
{
    signal_all(timer->data, SIGKILL);
}

void gw_supervisor_shutdown(gw_supervisor *self, uint64_t grace_ms, void (*done)(void *), void *arg)
{
    if (self->stopping)
        return;
    self->stopping = true;
    self->done = done;
    self->done_arg = arg;
    for (unsigned i = 0; i < self->nprocs; i++) {
        uv_timer_stop(&self->procs[i]->restart);
        uv_close((uv_handle_t *)&self->procs[i]->restart, restart_timer_closed);
    }
    signal_all(self, SIGTERM);
    /* The grace timer always exists while stopping, so done() always comes from a close
     * callback on the loop, never from inside this call. */
    uv_timer_init(self->loop, &self->grace);
    self->grace.data = self;
    self->grace_open = true;
    self->open_handles++;
    uv_timer_start(&self->grace, on_grace_expired, grace_ms, 0);
    bool any_process = false;
    for (unsigned i = 0; i < self->nprocs; i++)
        any_process |= self->procs[i]->process_open;
    if (!any_process) {
        self->grace_open = false;
        uv_close((uv_handle_t *)&self->grace, grace_closed);
    }
}

void gw_supervisor_destroy(gw_supervisor **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_supervisor *self = *self_p;
    for (unsigned i = 0; i < self->nprocs; i++) {
        gw_proc *proc = self->procs[i];
        free(proc->label);
        strv_free(proc->argv);
        strv_free(proc->env);
        free(proc);
    }
    free(self->procs);
    free(self);
    *self_p = NULL;
}
