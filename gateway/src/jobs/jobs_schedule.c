/*
 * jobs_schedule.c - periodic jobs (Celery beat): interval and cron schedules, created
 * over HTTP and kept in the store.
 *
 *   POST /schedules        {"task", "payload"?, "interval_ms" | "cron", "catch_up"?}
 *                          -> 201 {"id", "task", "next_run_ms", ...}
 *   GET /schedules         {"items": [...]} (the caller's, as for jobs)
 *   DELETE /schedules/{id} -> 204
 *
 * Exactly one job per tick, across restarts: a tick's job carries the idempotency key
 * "schedule:<id>:<tick ms>", and the schedule's last tick is written after the job, in
 * the same ordered store queue.  A gateway that dies between the two writes finds the
 * tick again at its next start and submits it again - the key finds the job written
 * before, so nothing is doubled.  Ticks missed while no gateway ran are made up, at
 * most `catch_up` of them (the latest ones); the rest are skipped.  Ticks are checked
 * on the queue's 50 ms timer, which the earliest coming tick moves forward (jobs.c).
 *
 * Gateways sharing a PostgreSQL store each tick every schedule they know; each tick's
 * job is written together with a conditional update of the schedule's last tick, in
 * one statement (jobs_pg.c), so exactly one gateway makes it and the others drop
 * theirs; the tick loop writes nothing else there.  The claim and the job commit together, so a
 * gateway that dies between them leaves the tick to be made again, as above.
 *
 * They also learn of each other's schedules: every GW_JOBS_SCHEDULES_SYNC_MS a
 * gateway reads the store's schedule rows through its ordered store queue (so the
 * snapshot holds every write this gateway queued before it), adds those it does not
 * know, replaces those whose definition changed (keeping the later last tick) and
 * drops those the store no longer has.  A local change (POST, DELETE, a declaration)
 * made while the read is in flight wins over the snapshot: each schedule remembers the
 * generation of its last local change, and one newer than the read is left alone; after
 * a local delete newer than the read, the snapshot adds nothing (the deleted one is
 * still in it) - the next read does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <barista/mpread.h>

#include "jobs_int.h"
#include "json.h"

struct gw_jobs_schedule {
    gw_list link;         /* in jobs->schedules */
    char id[33];          /* 32 hex digits, random */
    char *task;           /* task name (owned) */
    br_str payload;       /* msgpack argument (owned) */
    char *cron_text;      /* the expression (owned), or NULL for an interval */
    gw_jobs_cron cron;    /* parsed */
    uint64_t interval_ms; /* when not cron */
    int64_t last_tick_ms; /* the last tick a job was made for; its creation at first */
    int64_t next_ms;      /* the next tick, or -1 (a cron that never matches) */
    uint32_t catch_up;    /* missed ticks made up at most */
    bool has_owner;       /* created by a verified caller */
    uint8_t owned_by[GW_JOBS_IDEM_BYTES]; /* digest of its kind and subject */
    br_str identity;                      /* its bytes (owned), given to the jobs; maybe empty */
    uint64_t gen;                         /* j->sched_gen at its last local change */
    bool seen;                            /* in the store's snapshot (sync_done) */
};

static void schedule_free(gw_jobs_schedule *s)
{
    free(s->task);
    free((void *)s->payload.ptr);
    free(s->cron_text);
    free((void *)s->identity.ptr);
    free(s);
}

/* The tick after `t`. */
static int64_t tick_after(const gw_jobs_schedule *s, int64_t t)
{
    if (s->cron_text)
        return gw__jobs_cron_next(&s->cron, t);
    return t + (int64_t)s->interval_ms;
}

static gw_schedule_row row_of(const gw_jobs_schedule *s)
{
    return (gw_schedule_row){.id = br_str_c(s->id),
                             .task = br_str_c(s->task),
                             .payload = s->payload,
                             .cron = br_str_c(s->cron_text),
                             .interval_ms = s->interval_ms,
                             .last_tick_ms = s->last_tick_ms,
                             .catch_up = s->catch_up,
                             .identity = s->identity};
}

/* Builds a schedule from its parts (copied).  NULL when out of memory or the cron
 * text does not parse. */
static gw_jobs_schedule *schedule_new(const gw_schedule_row *r)
{
    gw_jobs_schedule *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    gw_list_init(&s->link);
    snprintf(s->id, sizeof(s->id), "%.*s", (int)r->id.len, r->id.ptr);
    s->task = strndup(r->task.ptr ? r->task.ptr : "", r->task.len);
    char *payload = malloc(r->payload.len ? r->payload.len : 1);
    char *identity = r->identity.len ? malloc(r->identity.len) : NULL;
    if (!s->task || !payload || (r->identity.len && !identity)) {
        free(payload);
        free(identity);
        schedule_free(s);
        return NULL;
    }
    if (r->payload.len)
        memcpy(payload, r->payload.ptr, r->payload.len);
    s->payload = (br_str){payload, r->payload.len};
    if (identity)
        memcpy(identity, r->identity.ptr, r->identity.len);
    s->identity = (br_str){identity, r->identity.len};
    s->has_owner = gw__jobs_owner_digest(s->identity, s->owned_by);
    if (r->cron.len) {
        s->cron_text = strndup(r->cron.ptr, r->cron.len);
        if (!s->cron_text || gw__jobs_cron_parse(s->cron_text, &s->cron) != 0) {
            schedule_free(s);
            return NULL;
        }
    }
    s->interval_ms = r->interval_ms;
    s->last_tick_ms = r->last_tick_ms;
    s->catch_up = r->catch_up;
    s->next_ms = tick_after(s, s->last_tick_ms);
    return s;
}

/* ---------------------------------------------------------------------------------- */
/* Ticks.                                                                              */

/* Submits the job of tick `tick` (keyed by it).  0, or the submit's error. */
static int submit_tick(gw_jobs *j, gw_jobs_schedule *s, int64_t tick)
{
    gw_jobs_task *t = gw__jobs_task_open(j, br_str_c(s->task));
    if (!t)
        return BR_ENOTFOUND;
    char key[64];
    snprintf(key, sizeof(key), "schedule:%s:%lld", s->id, (long long)tick);
    gw_job *job;
    /* Gateways sharing the store claim the tick with its job: an interval's tick is
     * free while the last one made is at least an interval before it (gateways that
     * declared it at different moments tick at different times), a cron's while it
     * is before it. */
    int64_t floor = s->cron_text ? tick - 1 : tick - (int64_t)s->interval_ms;
    return gw__jobs_submit_tick(j, t, s->payload, br_str_c(key), s->identity, br_str_c(s->id), tick,
                                floor, &job);
}

static void schedules_sync(gw_jobs *j, int64_t now);

void gw__jobs_schedules_tick(gw_jobs *j, int64_t now)
{
    if (gw__jobs_shared(j))
        schedules_sync(j, now);
    gw_list *l = j->schedules.next;
    while (l != &j->schedules) {
        gw_jobs_schedule *s = GW_CONTAINER_OF(l, gw_jobs_schedule, link);
        l = l->next;
        if (s->next_ms < 0 || s->next_ms > now)
            continue;
        /* Ticks missed beyond catch_up are skipped: only the latest ones are made. */
        int64_t tick = s->next_ms;
        uint32_t missed = 0;
        for (int64_t t = tick; t >= 0 && t <= now && missed <= s->catch_up; t = tick_after(s, t))
            missed++;
        while (missed > s->catch_up + 1 && tick >= 0 && tick <= now) {
            tick = tick_after(s, tick);
            missed--;
        }
        for (int64_t t = tick; t >= 0 && t <= now; t = tick_after(s, t)) {
            int rc = submit_tick(j, s, t);
            if (rc == BR_EFULL || rc == BR_ENOMEM)
                break; /* the store or memory is full: this tick again next time */
            if (rc == BR_ENOTFOUND && t == tick)
                gw_log(GW_LOG_WARN, "jobs", "schedule %s: task %s does not exist: tick skipped",
                       s->id, s->task);
            s->last_tick_ms = t;
        }
        s->next_ms = tick_after(s, s->last_tick_ms);
        /* On a shared store each claim wrote the last tick with its job: a tick this
         * gateway lost or skipped (its task has no worker here) is not its to write,
         * and writing it would take the next tick from the gateway that makes them. */
        if (gw__jobs_shared(j))
            continue;
        gw_schedule_row r = row_of(s);
        if (gw__jobs_store_put_schedule(j->store, &r, NULL, NULL) != 0)
            gw_log(GW_LOG_WARN, "jobs", "schedule %s: its last tick could not be written", s->id);
    }
}

int64_t gw__jobs_schedules_next_ms(const gw_jobs *j)
{
    int64_t next = -1;
    for (const gw_list *l = j->schedules.next; l != &j->schedules; l = l->next) {
        const gw_jobs_schedule *s = GW_CONTAINER_OF(l, gw_jobs_schedule, link);
        if (s->next_ms >= 0 && (next < 0 || s->next_ms < next))
            next = s->next_ms;
    }
    return next;
}

static void load_schedule(const gw_schedule_row *r, void *arg)
{
    gw_jobs *j = arg;
    gw_jobs_schedule *s = schedule_new(r);
    if (!s) {
        gw_log(GW_LOG_ERROR, "jobs", "schedule %.*s from the store dropped", (int)r->id.len,
               r->id.ptr);
        return;
    }
    gw_list_push_back(&j->schedules, &s->link);
    j->nschedules++;
}

int gw__jobs_schedules_load(gw_jobs *j)
{
    return gw__jobs_store_load_schedules(j->store, load_schedule, j);
}

void gw__jobs_schedules_free(gw_jobs *j)
{
    while (!gw_list_empty(&j->schedules)) {
        gw_jobs_schedule *s = GW_CONTAINER_OF(j->schedules.next, gw_jobs_schedule, link);
        gw_list_remove(&s->link);
        schedule_free(s);
    }
    j->nschedules = 0;
}

/* What is wrong with a schedule's timing (NULL: nothing), and in *where the field:
 * exactly one of an interval (10 ms .. 30 days) and a cron expression (copied into
 * cron_text, NUL-terminated), and catch_up up to GW_JOBS_CATCH_UP_MAX. */
static const char *timing_problem(bool has_iv, uint64_t interval, bool has_cron, br_str cron,
                                  uint64_t catch_up, char cron_text[GW_JOBS_CRON_MAX + 1],
                                  const char **where)
{
    gw_jobs_cron parsed;
    *where = "interval_ms";
    if (has_cron == has_iv)
        return "give interval_ms or cron, one of them";
    if (has_iv && (interval < GW_JOBS_INTERVAL_MIN_MS || interval > GW_JOBS_DELAY_MAX_MS))
        return "interval_ms must be 10 ms to 30 days";
    if (has_cron) {
        *where = "cron";
        snprintf(cron_text, GW_JOBS_CRON_MAX + 1, "%.*s", (int)cron.len, cron.ptr);
        if (cron.len > GW_JOBS_CRON_MAX || gw__jobs_cron_parse(cron_text, &parsed) != 0)
            return "a cron expression: minute hour day-of-month month day-of-week";
    }
    *where = "catch_up";
    return catch_up > GW_JOBS_CATCH_UP_MAX ? "catch_up must be 0 to 1000" : NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Schedules declared by services (READY.schedules).                                   */

/* The id of the schedule `name` of `task`: the same for every worker that declares it
 * and at every start, so that declaring it again finds it. */
static void declared_id(br_str task, br_str name, char id[33])
{
    uint8_t d[16];
    crypto_generichash_state st;
    uint32_t lens[2] = {task.len, name.len};
    crypto_generichash_init(&st, (const unsigned char *)"barista-schedule", 16, sizeof(d));
    crypto_generichash_update(&st, (const unsigned char *)lens, sizeof(lens));
    crypto_generichash_update(&st, (const unsigned char *)task.ptr, task.len);
    crypto_generichash_update(&st, (const unsigned char *)name.ptr, name.len);
    crypto_generichash_final(&st, d, sizeof(d));
    for (int i = 0; i < 16; i++)
        snprintf(id + 2 * i, 3, "%02x", d[i]);
}

static gw_jobs_schedule *schedule_find(gw_jobs *j, const char *id)
{
    for (gw_list *l = j->schedules.next; l != &j->schedules; l = l->next) {
        gw_jobs_schedule *s = GW_CONTAINER_OF(l, gw_jobs_schedule, link);
        if (strcmp(s->id, id) == 0)
            return s;
    }
    return NULL;
}

/* Puts s in old's place (old is freed), or last when old is NULL. */
static void schedule_put(gw_jobs *j, gw_jobs_schedule *old, gw_jobs_schedule *s)
{
    if (old) {
        gw_list_push_front(&old->link, &s->link);
        gw_list_remove(&old->link);
        schedule_free(old);
    } else {
        gw_list_push_back(&j->schedules, &s->link);
        j->nschedules++;
    }
}

static bool str_is(br_str a, const char *b)
{
    size_t n = b ? strlen(b) : 0;
    return a.len == n && (n == 0 || memcmp(a.ptr, b, n) == 0);
}

/* One declared schedule: made when new, replaced when its declaration changed (its
 * last tick kept when the timing did not), left alone when it is the same. */
static void declare_one(gw_jobs *j, const br_schedule_decl *d)
{
    char cron_text[GW_JOBS_CRON_MAX + 1] = "", id[33];
    const char *where;
    const char *bad = d->name.len > 64
                          ? "a name longer than 64 bytes"
                          : timing_problem(d->interval_ms > 0, d->interval_ms, d->cron.len > 0,
                                           d->cron, d->catch_up, cron_text, &where);
    if (bad) {
        gw_log(GW_LOG_WARN, "jobs", "schedule %.*s of task %.*s refused: %s",
               (int)(d->name.len < 64 ? d->name.len : 64), d->name.ptr, (int)d->task.len,
               d->task.ptr, bad);
        return;
    }
    declared_id(d->task, d->name, id);
    br_str payload = d->payload.len ? d->payload : (br_str){"\xc0", 1};
    gw_jobs_schedule *old = schedule_find(j, id);
    bool same_timing = old && str_is(d->cron, old->cron_text) &&
                       (d->cron.len > 0 || old->interval_ms == d->interval_ms);
    if (old && same_timing && old->catch_up == d->catch_up && str_is(d->task, old->task) &&
        old->payload.len == payload.len && memcmp(old->payload.ptr, payload.ptr, payload.len) == 0)
        return; /* declared again as it is: nothing to do */
    if (!old && j->nschedules >= GW_JOBS_SCHEDULES_MAX) {
        gw_log(GW_LOG_WARN, "jobs", "schedule %s refused: %u schedules exist", id,
               GW_JOBS_SCHEDULES_MAX);
        return;
    }
    gw_schedule_row r = {.id = br_str_c(id),
                         .task = d->task,
                         .payload = payload,
                         .cron = d->cron.len ? br_str_c(cron_text) : (br_str){0},
                         .interval_ms = d->cron.len ? 0 : d->interval_ms,
                         .last_tick_ms = same_timing ? old->last_tick_ms : gw__jobs_now_ms(),
                         .catch_up = d->catch_up};
    gw_jobs_schedule *s = schedule_new(&r);
    if (!s || gw__jobs_store_put_schedule(j->store, &r, NULL, NULL) != 0) {
        if (s)
            schedule_free(s);
        gw_log(GW_LOG_ERROR, "jobs", "schedule %s of task %.*s could not be stored", id,
               (int)d->task.len, d->task.ptr);
        return;
    }
    s->gen = ++j->sched_gen;
    schedule_put(j, old, s);
    gw_log(GW_LOG_INFO, "jobs", "schedule %s (%.*s of task %s) %s", id, (int)d->name.len,
           d->name.ptr, s->task, old ? "replaced: its declaration changed" : "declared");
}

void gw__jobs_schedules_declare(gw_jobs *j, const br_ready *r)
{
    for (uint32_t i = 0; i < r->nschedules; i++) {
        const br_schedule_decl *d = &r->schedules[i];
        bool runs = false;
        for (uint32_t k = 0; k < r->ntasks && !runs; k++)
            runs = r->tasks[k].len == d->task.len &&
                   memcmp(r->tasks[k].ptr, d->task.ptr, d->task.len) == 0;
        if (runs)
            declare_one(j, d);
        else
            gw_log(GW_LOG_WARN, "jobs",
                   "a schedule of task %.*s, which the worker does not run, "
                   "ignored",
                   (int)(d->task.len < 64 ? d->task.len : 64), d->task.ptr);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Other gateways' schedules (a shared store).                                         */

static int by_id(const void *a, const void *b)
{
    return strcmp((*(gw_jobs_schedule *const *)a)->id, (*(gw_jobs_schedule *const *)b)->id);
}

/* The same definition: task, argument, timing, catch-up and owner. */
static bool same_schedule(const gw_jobs_schedule *s, const gw_schedule_row *r)
{
    return str_is(r->task, s->task) && str_is(r->cron, s->cron_text) &&
           (r->cron.len > 0 || r->interval_ms == s->interval_ms) && r->catch_up == s->catch_up &&
           r->payload.len == s->payload.len &&
           (r->payload.len == 0 || memcmp(r->payload.ptr, s->payload.ptr, r->payload.len) == 0) &&
           r->identity.len == s->identity.len &&
           (r->identity.len == 0 || memcmp(r->identity.ptr, s->identity.ptr, r->identity.len) == 0);
}

/* One row of the snapshot: its schedule added, replaced or moved forward.  local[] is
 * the schedules known, sorted by id. */
static void sync_row(gw_jobs *j, const gw_schedule_row *r, gw_jobs_schedule **local, size_t n,
                     bool adds)
{
    char id[33];
    if (r->id.len != 32)
        return;
    snprintf(id, sizeof(id), "%.*s", 32, r->id.ptr);
    gw_jobs_schedule key = {.gen = 0}, *kp = &key, **hit = NULL;
    memcpy(key.id, id, sizeof(id));
    if (n > 0)
        hit = bsearch(&kp, local, n, sizeof(*local), by_id);
    gw_jobs_schedule *old = hit ? *hit : NULL;
    if (old) {
        old->seen = true;
        if (old->gen > j->sched_read_gen)
            return; /* changed here since the read was queued: ours is newer */
        if (same_schedule(old, r)) {
            if (r->last_tick_ms > old->last_tick_ms) { /* ticks another gateway made */
                old->last_tick_ms = r->last_tick_ms;
                old->next_ms = tick_after(old, old->last_tick_ms);
            }
            return;
        }
    } else if (!adds || j->nschedules >= GW_JOBS_SCHEDULES_MAX) {
        return;
    }
    gw_schedule_row row = *r;
    if (old && old->last_tick_ms > row.last_tick_ms)
        row.last_tick_ms = old->last_tick_ms; /* a last tick never moves back */
    gw_jobs_schedule *s = schedule_new(&row);
    if (!s)
        return; /* out of memory, or a cron this gateway cannot parse: next time */
    s->seen = true;
    s->gen = old ? old->gen : 0;
    if (hit)
        *hit = s; /* local[] stays sorted and points at live schedules */
    schedule_put(j, old, s);
    gw_log(GW_LOG_INFO, "jobs", "schedule %s (task %s) %s by another gateway of the queue", s->id,
           s->task, hit ? "changed" : "made");
}

static void sync_done(void *arg, int status, const gw_schedule_row *rows, size_t n)
{
    gw_jobs *j = arg;
    j->sched_reading = false;
    if (status != 0 || j->closing)
        return;
    size_t nlocal = 0;
    gw_jobs_schedule **local = malloc((j->nschedules ? j->nschedules : 1) * sizeof(*local));
    if (!local)
        return;
    for (gw_list *l = j->schedules.next; l != &j->schedules; l = l->next) {
        gw_jobs_schedule *s = GW_CONTAINER_OF(l, gw_jobs_schedule, link);
        s->seen = false;
        local[nlocal++] = s;
    }
    qsort(local, nlocal, sizeof(*local), by_id);
    bool adds = j->sched_del_gen <= j->sched_read_gen;
    for (size_t i = 0; i < n; i++)
        sync_row(j, &rows[i], local, nlocal, adds);
    free(local);
    /* Gone from the store, and not made here since the read was queued: deleted. */
    gw_list *l = j->schedules.next;
    while (l != &j->schedules) {
        gw_jobs_schedule *s = GW_CONTAINER_OF(l, gw_jobs_schedule, link);
        l = l->next;
        if (s->seen || s->gen > j->sched_read_gen)
            continue;
        gw_log(GW_LOG_INFO, "jobs", "schedule %s (task %s) deleted by another gateway of the queue",
               s->id, s->task);
        gw_list_remove(&s->link);
        j->nschedules--;
        schedule_free(s);
    }
}

/* Queues a read of the store's schedules when one is due and none is in flight. */
static void schedules_sync(gw_jobs *j, int64_t now)
{
    if (j->sched_reading || now < j->sched_sync_ms)
        return;
    j->sched_sync_ms = now + GW_JOBS_SCHEDULES_SYNC_MS;
    if (gw__jobs_store_read_schedules(j->store, sync_done, j) == 0) {
        j->sched_reading = true;
        j->sched_read_gen = j->sched_gen;
    }
}

/* ---------------------------------------------------------------------------------- */
/* The API.                                                                            */

static bool visible(const gw_jobs_schedule *s, br_str who)
{
    return gw__jobs_owner_matches(s->has_owner, s->owned_by, who);
}

static int put(br_buf *b, const char *s)
{
    return br_buf_append(b, s, strlen(s));
}

/* Appends schedule s as JSON. */
static int render(br_buf *b, const gw_jobs_schedule *s)
{
    char head[128];
    snprintf(head, sizeof(head), "{\"id\":\"%s\",\"task\":", s->id);
    int rc = put(b, head);
    if (rc == 0)
        rc = gw_json_append_string(b, s->task, strlen(s->task));
    if (rc == 0 && s->cron_text) {
        rc = put(b, ",\"cron\":");
        if (rc == 0)
            rc = gw_json_append_string(b, s->cron_text, strlen(s->cron_text));
    } else if (rc == 0) {
        char iv[48];
        snprintf(iv, sizeof(iv), ",\"interval_ms\":%llu", (unsigned long long)s->interval_ms);
        rc = put(b, iv);
    }
    char tail[160];
    snprintf(tail, sizeof(tail),
             ",\"catch_up\":%u,\"last_tick_ms\":%lld,\"next_run_ms\":", s->catch_up,
             (long long)s->last_tick_ms);
    if (rc == 0)
        rc = put(b, tail);
    if (rc == 0 && s->next_ms >= 0) {
        char n[24];
        snprintf(n, sizeof(n), "%lld", (long long)s->next_ms);
        rc = put(b, n);
    } else if (rc == 0) {
        rc = put(b, "null");
    }
    if (rc == 0)
        rc = put(b, ",\"payload\":");
    if (rc == 0 && gw_msgpack_to_json(s->payload.ptr, s->payload.len, b) != 0)
        rc = put(b, "null");
    return rc == 0 ? put(b, "}") : rc;
}

static void respond(gw_req *req, int status, const br_buf *b)
{
    gw_req_respond(req, status, NULL, 0, "application/json", b->data, b->len);
}

/* Answers 422 with one error at ["body", field]. */
static void respond_422(gw_req *req, const char *field, const char *msg)
{
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"detail\":[{\"type\":\"value_error\",\"loc\":[\"body\",\"%s\"],"
                     "\"msg\":\"%s\",\"input\":null}]}",
                     field, msg);
    gw_req_respond(req, 422, NULL, 0, "application/json", body, (size_t)n);
}

/* POST /schedules' body, read from its msgpack form. */
typedef struct schedule_in {
    br_str task, cron, payload;
    bool has_task, has_cron, has_interval, has_catch_up;
    uint64_t interval_ms, catch_up;
    const char *bad; /* the field that is not what it should be, or NULL */
} schedule_in;

/* Reads the body's map; unknown keys are ignored.  False when it is not a map. */
static bool read_body(br_str mp, schedule_in *in)
{
    br_cursor c;
    uint32_t n;
    br_cursor_init(&c, mp.ptr, mp.len);
    if (br_cursor_map(&c, &n) != 0)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        br_str key;
        if (br_cursor_str(&c, &key, 64) != 0)
            return false;
        const uint8_t *at = c.p;
        int rc = 0;
        if (br_str_eq(key, "task")) {
            in->has_task = true;
            rc = br_cursor_str(&c, &in->task, GW_JOBS_NAME_MAX);
        } else if (br_str_eq(key, "cron")) {
            in->has_cron = true;
            rc = br_cursor_str(&c, &in->cron, GW_JOBS_CRON_MAX);
        } else if (br_str_eq(key, "interval_ms")) {
            in->has_interval = true;
            rc = br_cursor_uint(&c, &in->interval_ms);
        } else if (br_str_eq(key, "catch_up")) {
            in->has_catch_up = true;
            rc = br_cursor_uint(&c, &in->catch_up);
        } else {
            rc = br_cursor_skip(&c, BR_CURSOR_MAX_DEPTH);
            if (rc == 0 && br_str_eq(key, "payload"))
                in->payload = (br_str){(const char *)at, (uint32_t)(c.p - at)};
        }
        if (rc != 0) {
            if (!in->bad)
                in->bad = br_str_eq(key, "task")          ? "task"
                          : br_str_eq(key, "cron")        ? "cron"
                          : br_str_eq(key, "interval_ms") ? "interval_ms"
                                                          : "catch_up";
            if (br_cursor_skip(&c, BR_CURSOR_MAX_DEPTH) != 0)
                return false;
        }
    }
    return br_cursor_left(&c) == 0;
}

/* POST /schedules */
static void post_schedule(gw_req *req, void *data)
{
    gw_jobs *j = data;
    br_buf mp = {.max = br_limits_default.max_body};
    char err[GW_DETAIL_MAX];
    schedule_in in = {0};
    if (gw_json_to_msgpack(req->body, req->body_len, &mp, err, sizeof(err)) != 0 ||
        !read_body((br_str){(const char *)mp.data, (uint32_t)mp.len}, &in)) {
        br_buf_free(&mp);
        respond_422(req, "", "the body must be a JSON object");
        return;
    }
    br_str task = in.task, cron = in.cron;
    uint64_t interval = in.interval_ms, catch_up = in.has_catch_up ? in.catch_up : 1;
    bool has_cron = in.has_cron, has_iv = in.has_interval;
    if (!in.has_task || (in.bad && strcmp(in.bad, "task") == 0) || task.len == 0 ||
        !gw__jobs_task_public(j, task)) {
        br_buf_free(&mp);
        respond_422(req, "task", "a public task that exists");
        return;
    }
    char cron_text[GW_JOBS_CRON_MAX + 1];
    const char *bad = NULL, *where = NULL;
    if (in.bad) {
        bad = "not the right type";
        where = in.bad;
    } else {
        bad = timing_problem(has_iv, interval, has_cron, cron, catch_up, cron_text, &where);
    }
    if (!bad && j->nschedules >= GW_JOBS_SCHEDULES_MAX) {
        br_buf_free(&mp);
        gw_req_respond_error(req, 503, true, "Service Unavailable: too many schedules");
        return;
    }
    if (bad) {
        br_buf_free(&mp);
        respond_422(req, where, bad);
        return;
    }
    br_str payload = in.payload.len ? in.payload : (br_str){"\xc0", 1};
    uint8_t rnd[16];
    randombytes_buf(rnd, sizeof(rnd));
    char id[33];
    for (int i = 0; i < 16; i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    gw_schedule_row r = {.id = br_str_c(id),
                         .task = task,
                         .payload = payload,
                         .cron = has_cron ? br_str_c(cron_text) : (br_str){0},
                         .interval_ms = interval,
                         .last_tick_ms = gw__jobs_now_ms(),
                         .catch_up = (uint32_t)catch_up,
                         .identity = gw__jobs_caller(req)};
    gw_jobs_schedule *s = schedule_new(&r);
    br_buf_free(&mp); /* r's strings pointed into it: the schedule has its copies */
    gw_schedule_row stored = s ? row_of(s) : r;
    if (!s || gw__jobs_store_put_schedule(j->store, &stored, NULL, NULL) != 0) {
        if (s)
            schedule_free(s);
        gw_req_respond_error(req, 503, true, "Service Unavailable: the schedule was not stored");
        return;
    }
    s->gen = ++j->sched_gen;
    gw_list_push_back(&j->schedules, &s->link);
    j->nschedules++;
    j->scratch.len = 0;
    if (render(&j->scratch, s) != 0)
        gw_req_respond_detail(req, 500, "Internal Server Error");
    else
        respond(req, 201, &j->scratch);
}

/* GET /schedules */
static void list_schedules(gw_req *req, void *data)
{
    gw_jobs *j = data;
    br_str who = gw__jobs_caller(req);
    br_buf *b = &j->scratch;
    b->len = 0;
    int rc = put(b, "{\"items\":[");
    bool first = true;
    for (gw_list *l = j->schedules.next; l != &j->schedules && rc == 0; l = l->next) {
        gw_jobs_schedule *s = GW_CONTAINER_OF(l, gw_jobs_schedule, link);
        if (!visible(s, who))
            continue;
        if (!first)
            rc = put(b, ",");
        first = false;
        if (rc == 0)
            rc = render(b, s);
    }
    if (rc == 0)
        rc = put(b, "]}");
    if (rc != 0)
        gw_req_respond_detail(req, 500, "Internal Server Error");
    else
        respond(req, 200, b);
}

/* DELETE /schedules/{id} */
static void delete_schedule(gw_req *req, void *data)
{
    gw_jobs *j = data;
    gw_path_param p = gw_route_match_param(&req->match, 0);
    br_str who = gw__jobs_caller(req);
    for (gw_list *l = j->schedules.next; l != &j->schedules; l = l->next) {
        gw_jobs_schedule *s = GW_CONTAINER_OF(l, gw_jobs_schedule, link);
        if (p.value_len != 32 || memcmp(p.value, s->id, 32) != 0 || !visible(s, who))
            continue;
        if (gw__jobs_store_delete_schedule(j->store, br_str_c(s->id), NULL, NULL) != 0) {
            gw_req_respond_error(req, 503, true, "Service Unavailable: the store is busy");
            return;
        }
        gw_list_remove(&s->link);
        j->nschedules--;
        schedule_free(s);
        j->sched_del_gen = ++j->sched_gen;
        gw_req_respond(req, 204, NULL, 0, NULL, NULL, 0);
        return;
    }
    gw_req_respond_detail(req, 404, "Schedule not found");
}

static const gw_jobs_route routes[] = {
    {"POST", "/schedules", post_schedule},
    {"GET", "/schedules", list_schedules},
    {"DELETE", "/schedules/{id}", delete_schedule},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

int gw__jobs_schedule_routes_add(gw_jobs *j)
{
    int rc = gw__jobs_router_add(j, routes, NROUTES);
    j->schedule_routes_added = rc == 0;
    return rc;
}

void gw__jobs_schedule_routes_remove(gw_jobs *j)
{
    if (j->schedule_routes_added)
        gw__jobs_router_remove(j, routes, NROUTES);
    j->schedule_routes_added = false;
}
