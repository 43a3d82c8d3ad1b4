/*
 * jobs.c - the job queue: jobs in memory, their rows in the store, and the timer that
 * releases delayed jobs, expires leases, deletes old jobs and retires tasks (see
 * jobs_int.h for where a job can be).
 *
 * Every change that must outlive the gateway is a write to the store: the new job
 * (the 202 waits for it), its end, a retry's schedule, and its deletion at expiry.
 * Leasing a job is not written: a gateway that restarts puts every running job back
 * in the queue anyway, and skipping that write keeps one row per state change a client
 * can see.  The attempt count of an attempt cut short by a gateway crash is lost with
 * it.
 *
 * A job's id is its sequence number - the millisecond it was made, shifted left 16
 * bits, plus a counter; never below one handed out or loaded before, so never used
 * twice - as 16 hex digits, then 80 random bits from libsodium as 20 more: time-ordered
 * (the store's rows append) and unguessable (the random part is checked on every
 * lookup).  Idempotency keys are indexed by a digest of the task and the key, so a key
 * means one job per task, and the key itself need not stay in memory.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include <barista/mpread.h>

#include "jobs_int.h"

void gw_jobs_config_defaults(gw_jobs_config *cfg)
{
    *cfg = (gw_jobs_config){
        .db = GW_JOBS_DB,
        .fsync = 0,
        .retention_ms = GW_JOBS_RETENTION_MS,
        .max_attempts = GW_JOBS_MAX_ATTEMPTS,
        .lease_ms = GW_JOBS_LEASE_MS,
        .backoff_ms = GW_JOBS_BACKOFF_MS,
        .backoff_cap_ms = GW_JOBS_BACKOFF_CAP_MS,
        .task_limit = GW_JOBS_TASK_LIMIT,
        .memory = GW_JOBS_MEMORY,
        .task_bytes = GW_JOBS_TASK_BYTES,
        .task_grace_ms = GW_JOBS_TASK_GRACE_MS,
        .gateway_lease_ms = GW_JOBS_GATEWAY_LEASE_MS,
    };
}

uint64_t gw_jobs_backoff_ms(uint32_t attempt, uint32_t base_ms, uint32_t cap_ms, uint64_t rnd)
{
    uint64_t d = base_ms;
    for (uint32_t i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    return d / 2 + rnd % (d - d / 2 + 1);
}

int64_t gw__jobs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next_random(gw_jobs *j)
{
    j->rng ^= j->rng << 13;
    j->rng ^= j->rng >> 7;
    j->rng ^= j->rng << 17;
    return j->rng;
}

uint64_t gw__jobs_hash(br_str s)
{
    uint64_t h = 14695981039346656037ull;
    for (uint32_t i = 0; i < s.len; i++)
        h = (h ^ (uint8_t)s.ptr[i]) * 1099511628211ull;
    return h ? h : 1;
}

/* ---------------------------------------------------------------------------------- */
/* Ids and keys.                                                                       */

static br_str id_of(const gw_job *job)
{
    return (br_str){job->id, job->id_len};
}

gw_job *gw__jobs_find_seq(gw_jobs *j, uint64_t seq)
{
    return seq ? gw_idmap_get(j->byid, seq) : NULL;
}

/* The sequence number an id carries: the first 16 hex digits of a new id, the whole
 * of an old decimal one; 0 for text that is neither. */
uint64_t gw__jobs_hex64(br_str s)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < s.len && i < 16; i++) {
        char c = s.ptr[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    return v;
}

uint64_t gw__jobs_seq_of(br_str id)
{
    uint64_t v = 0;
    if (id.len == GW_JOB_ID_MAX)
        return gw__jobs_hex64((br_str){id.ptr, 16});
    if (id.len == 0 || id.len > 19)
        return 0;
    for (uint32_t i = 0; i < id.len; i++) {
        if (id.ptr[i] < '0' || id.ptr[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(id.ptr[i] - '0');
    }
    return v;
}

gw_job *gw__jobs_find(gw_jobs *j, br_str id)
{
    gw_job *job = gw__jobs_find_seq(j, gw__jobs_seq_of(id));
    /* The whole id must match: its random part is what makes it unguessable. */
    if (!job || job->id_len != id.len || memcmp(job->id, id.ptr, id.len) != 0)
        return NULL;
    return job;
}

/* Gives job the next sequence number and its id. */
static void new_id(gw_jobs *j, gw_job *job)
{
    enum { RANDOM = (GW_JOB_ID_MAX - 16) / 2 };
    static const char hex[] = "0123456789abcdef";
    uint64_t seq = (uint64_t)gw__jobs_now_ms() << 16;
    if (seq <= j->last_seq)
        seq = j->last_seq + 1;
    /* Gateways sharing the store each hand out their own residue. */
    uint32_t stride = j->store->seq_stride;
    if (stride > 1)
        seq += (j->store->seq_tag + stride - seq % stride) % stride;
    j->last_seq = seq;
    job->seq = seq;
    if (j->pool_left < RANDOM) {
        randombytes_buf(j->pool, sizeof(j->pool));
        j->pool_left = sizeof(j->pool);
    }
    uint8_t *r = j->pool + sizeof(j->pool) - j->pool_left;
    j->pool_left -= RANDOM;
    for (int i = 0; i < 16; i++)
        job->id[i] = hex[(seq >> (60 - 4 * i)) & 15];
    for (int i = 0; i < RANDOM; i++) {
        job->id[16 + 2 * i] = hex[r[i] >> 4];
        job->id[17 + 2 * i] = hex[r[i] & 15];
    }
    job->id[GW_JOB_ID_MAX] = '\0';
    job->id_len = GW_JOB_ID_MAX;
    sodium_memzero(r, RANDOM); /* handed out: not kept */
}

/* The digest that indexes an idempotency key: BLAKE2b-128 of the task name's length,
 * the name and the key, so that equal keys of different tasks never meet. */
static void key_digest(const gw_jobs_task *t, br_str key, uint8_t out[GW_JOBS_IDEM_BYTES])
{
    crypto_generichash_state st;
    uint32_t n = (uint32_t)strlen(t->name);
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    crypto_generichash_init(&st, NULL, 0, GW_JOBS_IDEM_BYTES);
    crypto_generichash_update(&st, len, sizeof(len));
    crypto_generichash_update(&st, (const uint8_t *)t->name, n);
    crypto_generichash_update(&st, (const uint8_t *)key.ptr, key.len);
    crypto_generichash_final(&st, out, GW_JOBS_IDEM_BYTES);
}

static uint64_t digest_hash(const uint8_t d[GW_JOBS_IDEM_BYTES])
{
    uint64_t h = 0;
    for (int i = 0; i < 8; i++)
        h = h << 8 | d[i];
    return h ? h : 1;
}

static gw_job *key_find(gw_jobs *j, const uint8_t d[GW_JOBS_IDEM_BYTES])
{
    for (gw_job *job = gw_idmap_get(j->bykey, digest_hash(d)); job; job = job->idem_next)
        if (memcmp(job->idem, d, GW_JOBS_IDEM_BYTES) == 0)
            return job;
    return NULL;
}

/* Adds job at the head of the chain under `key` in map; *next is its link.  0 or the
 * id map's error (nothing changed then). */
static int chain_put(gw_idmap *map, uint64_t key, gw_job *job, gw_job **next)
{
    gw_job *head = gw_idmap_take(map, key);
    *next = head;
    int rc = gw_idmap_put(map, key, job);
    if (rc != 0) {
        *next = NULL;
        if (head)
            gw_idmap_put(map, key, head);
    }
    return rc;
}

/* Removes job from the chain of idempotency digests under `key`. */
static void chain_take(gw_idmap *map, uint64_t key, gw_job *job)
{
    gw_job *head = gw_idmap_take(map, key);
    gw_job **pp = &head;
    while (*pp && *pp != job)
        pp = &(*pp)->idem_next;
    if (*pp)
        *pp = job->idem_next;
    if (head)
        gw_idmap_put(map, key, head);
}

/* Indexes job by sequence number and key.  0 or the id map's error. */
static int job_index(gw_jobs *j, gw_job *job)
{
    int rc = gw_idmap_put(j->byid, job->seq, job);
    if (rc != 0 || !job->has_key)
        return rc;
    rc = chain_put(j->bykey, digest_hash(job->idem), job, &job->idem_next);
    if (rc != 0)
        gw_idmap_take(j->byid, job->seq);
    return rc;
}

static void job_unindex(gw_jobs *j, gw_job *job)
{
    gw_idmap_take(j->byid, job->seq);
    if (job->has_key)
        chain_take(j->bykey, digest_hash(job->idem), job);
}

/* ---------------------------------------------------------------------------------- */
/* Owners.                                                                             */

bool gw__jobs_owner_digest(br_str identity, uint8_t out[GW_JOBS_IDEM_BYTES])
{
    br_cursor c;
    uint32_t n;
    br_str kind = {0}, sub = {0};
    br_cursor_init(&c, identity.ptr, identity.len);
    if (identity.len == 0 || br_cursor_map(&c, &n) != 0)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        br_str key, value;
        if (br_cursor_str(&c, &key, 64) != 0)
            return false;
        bool is_kind = br_str_eq(key, "kind"), is_sub = br_str_eq(key, "sub");
        if (is_kind || is_sub) {
            if (br_cursor_str(&c, &value, GW_JOBS_IDENTITY_MAX) != 0)
                return false;
            *(is_kind ? &kind : &sub) = value;
        } else if (br_cursor_skip(&c, BR_CURSOR_MAX_DEPTH) != 0) {
            return false;
        }
    }
    if (kind.len == 0)
        return false;
    /* The kind's length first, so that ("ab","c") and ("a","bc") differ. */
    uint8_t len = (uint8_t)(kind.len < 255 ? kind.len : 255);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, GW_JOBS_IDEM_BYTES);
    crypto_generichash_update(&st, &len, 1);
    crypto_generichash_update(&st, (const uint8_t *)kind.ptr, kind.len);
    crypto_generichash_update(&st, (const uint8_t *)sub.ptr, sub.len);
    crypto_generichash_final(&st, out, GW_JOBS_IDEM_BYTES);
    return true;
}

bool gw__jobs_owner_matches(bool has_owner, const uint8_t owned_by[GW_JOBS_IDEM_BYTES],
                            br_str identity)
{
    if (!has_owner)
        return true;
    uint8_t d[GW_JOBS_IDEM_BYTES];
    return gw__jobs_owner_digest(identity, d) &&
           sodium_memcmp(d, owned_by, GW_JOBS_IDEM_BYTES) == 0;
}

bool gw__jobs_visible(const gw_job *job, br_str identity)
{
    return gw__jobs_owner_matches(job->has_owner, job->owned_by, identity);
}

/* Gives job its owner: the digest always, the bytes (for its JOBs) when they fit
 * GW_JOBS_IDENTITY_MAX.  0 or BR_ENOMEM. */
static int owner_set(gw_job *job, br_str identity)
{
    job->has_owner = gw__jobs_owner_digest(identity, job->owned_by);
    if (!job->has_owner || identity.len > GW_JOBS_IDENTITY_MAX)
        return 0;
    char *copy = malloc(identity.len);
    if (!copy)
        return BR_ENOMEM;
    memcpy(copy, identity.ptr, identity.len);
    job->identity = (br_str){copy, identity.len};
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Jobs.                                                                               */

static bool finished(const gw_job *job)
{
    return job->status == GW_JOB_SUCCEEDED || job->status == GW_JOB_DEAD ||
           job->status == GW_JOB_CANCELLED;
}

bool gw__jobs_finished(const gw_job *job)
{
    return finished(job);
}

/* Allocates a job of t, not indexed, not linked, holding nothing. */
static gw_job *job_new(gw_jobs *j, gw_jobs_task *t)
{
    gw_job *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    job->owner = j;
    job->task = t;
    job->progress = -1.0f;
    t->njobs++;
    gw_list_init(&job->all);
    gw_list_init(&job->link);
    gw_list_init(&job->waiters);
    return job;
}

/* Frees a job that is on no structure; its task may go with it. */
static void job_release(gw_jobs *j, gw_job *job)
{
    gw__jobs_payload_drop(j, job);
    gw__jobs_detail_drop(j, job);
    gw_list_remove(&job->all);
    free((void *)job->identity.ptr);
    free(job->note);
    free(job->parents);
    gw_jobs_task *t = job->task;
    free(job);
    t->njobs--;
    gw__jobs_task_unref(j, t);
}

/* Takes job off every structure and frees it; its waiters must be gone. */
static void job_free(gw_jobs *j, gw_job *job)
{
    gw_list_remove(&job->link);
    gw_deadline_heap_remove(&j->delayed, &job->timer);
    gw_deadline_heap_remove(&j->leases, &job->timer);
    job_unindex(j, job);
    if (job->flow)
        gw__jobs_flow_forget(j, job);
    if (!finished(job)) {
        job->task->unfinished--;
        job->task->bytes -= job->payload_len;
    }
    j->njobs--;
    job_release(j, job);
}

static gw_job_row job_row(const gw_job *job)
{
    return (gw_job_row){
        .seq = job->seq,
        .id = id_of(job),
        .task = br_str_c(job->task->name),
        .payload = job->payload,
        .payload_len = job->payload_len,
        .status = job->status,
        .attempts = job->attempts,
        .run_at_ms = job->run_at_ms,
        .updated_ms = job->updated_ms,
        .result = job->result,
        .error = job->error,
        .identity = job->identity,
    };
}

/* Writes job's new state (its detail as given: the caller may be about to drop it
 * from memory); nobody waits for it. */
static void job_persist(gw_jobs *j, gw_job *job, br_str result, br_str error)
{
    gw_job_row r = job_row(job);
    r.result = result;
    r.error = error;
    int rc = gw__jobs_store_update(j->store, &r, NULL, NULL);
    if (rc != 0)
        gw_log(GW_LOG_ERROR, "jobs", "job %s: gw__jobs_store_update failed: %s", job->id,
               br_strerror(rc));
}

void gw__jobs_persist(gw_jobs *j, gw_job *job)
{
    job_persist(j, job, job->result, job->error);
}

/* Tells every waiter of job. */
static void job_wake(gw_job *job, int status)
{
    while (!gw_list_empty(&job->waiters)) {
        gw_job_waiter *w = GW_CONTAINER_OF(job->waiters.next, gw_job_waiter, link);
        gw_list_remove(&w->link);
        w->ready(w, job, status);
    }
}

/* The first write of a job is done: it may run, and its clients hear of it.  A job
 * whose write failed is dropped: nobody was told it exists. */
static void on_inserted(void *arg, int status)
{
    gw_job *job = arg;
    gw_jobs *j = job->owner;
    if (status != 0) {
        if (status == BR_ENOTFOUND)
            j->stats.accepted--; /* a schedule's tick another gateway made */
        job_wake(job, status);
        job_free(j, job);
        return;
    }
    job_wake(job, 0);
    gw__jobs_made_durable(j, job);
}

void gw__jobs_made_durable(gw_jobs *j, gw_job *job)
{
    job->durable = true;
    if (job->status == GW_JOB_WAITING) {
        /* Its argument waits in the store; its parents' results will join it. */
        gw__jobs_payload_drop(j, job);
        gw_list_push_back(&j->waiting, &job->link);
        return;
    }
    gw__jobs_schedule(j, job);
    if (!j->closing)
        gw__jobs_pump_task(j, job->task);
}

void gw__jobs_unmake(gw_jobs *j, gw_job *job)
{
    job_free(j, job);
}

/* Makes room at GW_JOBS_MAX: the oldest finished job expires before its time. */
static void expire_oldest(gw_jobs *j)
{
    if (gw_list_empty(&j->finished))
        return;
    gw_job *job = GW_CONTAINER_OF(j->finished.next, gw_job, link);
    if (gw__jobs_store_delete(j->store, job->seq, NULL, NULL) == 0)
        job_free(j, job);
}

/* Makes a job (see gw__jobs_make); idem, when given, is its key's digest. */
static int job_make(gw_jobs *j, gw_jobs_task *t, br_str payload, br_str identity,
                    const uint8_t *idem, uint8_t status, gw_job **out)
{
    if (j->njobs >= GW_JOBS_MAX)
        expire_oldest(j);
    if (j->njobs >= GW_JOBS_MAX || t->unfinished >= gw__jobs_task_limit(j, t))
        return BR_EFULL;
    /* Bytes: the task's share of the store, and the quarter of the memory budget that
     * holds payloads until they are durable. */
    if (t->bytes + payload.len > j->cfg.task_bytes ||
        j->insert_bytes + payload.len > j->cfg.memory / 4)
        return BR_ELIMIT;
    gw_job *job = job_new(j, t);
    char *copy = payload.len ? malloc(payload.len) : NULL;
    if (!job || (payload.len && !copy) || owner_set(job, identity) != 0) {
        free(copy);
        if (job)
            job_release(j, job);
        return BR_ENOMEM;
    }
    if (payload.len)
        memcpy(copy, payload.ptr, payload.len);
    job->payload = (br_str){copy, payload.len};
    job->payload_len = payload.len;
    job->payload_in = GW_PAYLOAD_INSERTING;
    j->insert_bytes += payload.len;
    if (idem) {
        job->has_key = true;
        memcpy(job->idem, idem, GW_JOBS_IDEM_BYTES);
    }
    new_id(j, job);
    job->status = status;
    job->updated_ms = job->run_at_ms = gw__jobs_now_ms();
    int rc = job_index(j, job);
    if (rc != 0) {
        job_release(j, job);
        return rc == BR_EFULL ? BR_EFULL : BR_ENOMEM;
    }
    j->njobs++;
    t->unfinished++;
    t->bytes += payload.len;
    gw_list_push_back(&j->all, &job->all);
    *out = job;
    return 0;
}

/* gw__jobs_submit, and gw__jobs_submit_tick's claim (claim->claim empty: none). */
static int submit(gw_jobs *j, gw_jobs_task *t, br_str payload, br_str key, uint32_t delay_ms,
                  br_str identity, gw_job_waiter *waiter, const gw_job_row *claim, gw_job **out)
{
    *out = NULL;
    uint8_t digest[GW_JOBS_IDEM_BYTES];
    if (key.len > 0) {
        key_digest(t, key, digest);
        gw_job *old = key_find(j, digest);
        if (old) {
            *out = old;
            if (waiter && old->durable)
                waiter->ready(waiter, old, 0);
            else if (waiter)
                gw_list_push_back(&old->waiters, &waiter->link);
            return 0;
        }
    }
    gw_job *job;
    int rc = job_make(j, t, payload, identity, key.len > 0 ? digest : NULL, GW_JOB_QUEUED, &job);
    if (rc != 0)
        return rc;
    job->run_at_ms = job->updated_ms + delay_ms;
    gw_job_row r = job_row(job);
    r.idem_key = key; /* the key text is written, never held */
    if (claim) {
        r.claim = claim->claim;
        r.claim_tick = claim->claim_tick;
        r.claim_floor = claim->claim_floor;
    }
    rc = gw__jobs_store_insert(j->store, &r, on_inserted, job);
    if (rc != 0) {
        job_free(j, job);
        return rc == BR_EFULL ? BR_EFULL : BR_ENOMEM;
    }
    if (waiter)
        gw_list_push_back(&job->waiters, &waiter->link);
    j->stats.accepted++;
    *out = job;
    return 0;
}

int gw__jobs_submit(gw_jobs *j, gw_jobs_task *t, br_str payload, br_str key, uint32_t delay_ms,
                    br_str identity, gw_job_waiter *waiter, gw_job **out)
{
    return submit(j, t, payload, key, delay_ms, identity, waiter, NULL, out);
}

int gw__jobs_submit_tick(gw_jobs *j, gw_jobs_task *t, br_str payload, br_str key, br_str identity,
                         br_str schedule, int64_t tick, int64_t floor, gw_job **out)
{
    gw_job_row claim = {.claim = schedule, .claim_tick = tick, .claim_floor = floor};
    return submit(j, t, payload, key, 0, identity, NULL, gw__jobs_shared(j) ? &claim : NULL, out);
}

int gw__jobs_make(gw_jobs *j, gw_jobs_task *t, br_str payload, br_str identity, uint8_t status,
                  gw_job **out)
{
    *out = NULL;
    return job_make(j, t, payload, identity, NULL, status, out);
}

/* job ended for good: on the finished list until it expires. */
static void job_finish(gw_jobs *j, gw_job *job, uint8_t status)
{
    job->status = status;
    if (status == GW_JOB_SUCCEEDED) {
        j->stats.completed++;
        job->task->nsucceeded++;
    } else if (status == GW_JOB_CANCELLED) {
        j->stats.cancelled++;
        job->task->ncancelled++;
    } else {
        j->stats.dead++;
        job->task->ndead++;
    }
    job->task->unfinished--;
    job->task->bytes -= job->payload_len;
    gw_list_remove(&job->link);
    gw_list_push_back(&j->finished, &job->link);
}

void gw__jobs_finish(gw_jobs *j, gw_job *job, uint8_t status)
{
    job_finish(j, job, status);
}

void gw__jobs_attempt_ended(gw_jobs *j, gw_job *job, int outcome, br_str result, br_str error,
                            bool lost)
{
    job->updated_ms = gw__jobs_now_ms();
    if (error.len > GW_JOBS_ERROR_MAX)
        error.len = GW_JOBS_ERROR_MAX;
    if (outcome != BR_JOB_OK)
        result = (br_str){0};
    /* What is written is what the worker said, whether or not memory keeps it. */
    gw__jobs_detail_set(j, job, result, error);
    if (job->timed_out && outcome != BR_JOB_OK) {
        /* Whatever the handler said when it stopped, the attempt timed out. */
        job->timed_out = false;
        outcome = BR_JOB_RETRY;
        error = br_str_c("timed out");
        gw__jobs_detail_set(j, job, result, error);
    }
    job->timed_out = false;
    if (outcome == BR_JOB_OK) {
        job_finish(j, job, GW_JOB_SUCCEEDED);
    } else if (job->cancel_wanted) {
        /* Cancelled while it ran: whatever the worker made of the cancel ends it. */
        job_finish(j, job, GW_JOB_CANCELLED);
    } else if (outcome == BR_JOB_FATAL || job->attempts >= gw__jobs_max_attempts(j, job->task)) {
        job_finish(j, job, GW_JOB_DEAD);
    } else if (lost) {
        j->stats.retried++;
        job->task->nfailed++;
        /* The worker went away with it: nothing says the job is at fault, so it runs
         * again at once (at the front: it has waited already). */
        job->status = GW_JOB_QUEUED;
        job->run_at_ms = job->updated_ms;
        gw__jobs_spill_front(j, job);
        /* Not written - a restart requeues it just the same - unless the store is
         * where GET reads its error from. */
        if (job->detail_on_disk)
            job_persist(j, job, result, error);
        return;
    } else {
        j->stats.retried++;
        job->task->nfailed++;
        job->status = GW_JOB_FAILED;
        job->run_at_ms =
            job->updated_ms +
            (int64_t)gw_jobs_backoff_ms(job->attempts, gw__jobs_backoff_ms(j, job->task),
                                        gw__jobs_backoff_cap_ms(j, job->task), next_random(j));
        gw__jobs_schedule(j, job);
    }
    job_persist(j, job, result, error);
    /* After its row: a child reads this result back from the store. */
    if (job->flow && finished(job))
        gw__jobs_flow_ended(j, job);
}

/* ---------------------------------------------------------------------------------- */
/* Control: cancel and retry.                                                          */

/* A job being read back stays on its task's loading list: on_loaded sees it ended. */
void gw__jobs_unqueue(gw_jobs *j, gw_job *job)
{
    gw_jobs_task *t = job->task;
    if (gw_deadline_pending(&job->timer)) {
        gw_deadline_heap_remove(&j->delayed, &job->timer);
    } else if (job->loading) {
        return;
    } else if (job->payload_in == GW_PAYLOAD_READY || job->payload_len == 0) {
        gw_list_remove(&job->link);
        t->nready--;
    } else {
        gw_list_remove(&job->link);
        t->nspilled--;
    }
    gw__jobs_payload_drop(j, job);
}

int gw__jobs_cancel(gw_jobs *j, gw_job *job)
{
    if (finished(job) || !job->durable)
        return BR_EINVAL;
    if (job->loading) {
        job->cancel_wanted = true; /* its read's end cancels it (jobs_payload.c) */
        return 1;
    }
    if (job->status == GW_JOB_RUNNING) {
        if (!job->cancel_wanted) {
            job->cancel_wanted = true;
            gw__jobs_send_cancel(j, job);
        }
        return 1;
    }
    if (job->status == GW_JOB_WAITING)
        return gw__jobs_flow_cancel_waiting(j, job);
    gw__jobs_unqueue(j, job);
    job->updated_ms = gw__jobs_now_ms();
    job_finish(j, job, GW_JOB_CANCELLED);
    job_persist(j, job, job->result, job->error);
    if (job->flow)
        gw__jobs_flow_ended(j, job);
    return 0;
}

int gw__jobs_retry(gw_jobs *j, gw_job *job)
{
    gw_jobs_task *t = job->task;
    if (job->loading || (job->status != GW_JOB_DEAD && job->status != GW_JOB_CANCELLED &&
                         job->status != GW_JOB_FAILED))
        return BR_EINVAL;
    if (job->flow && !gw__jobs_flow_may_retry(job))
        return BR_EVALUE;
    bool ended = job->status != GW_JOB_FAILED;
    if (ended) {
        if (t->unfinished >= gw__jobs_task_limit(j, t))
            return BR_EFULL;
        if (t->bytes + job->payload_len > j->cfg.task_bytes)
            return BR_ELIMIT;
        t->unfinished++;
        t->bytes += job->payload_len;
        gw_list_remove(&job->link); /* off the finished list */
    } else {
        gw__jobs_unqueue(j, job);
    }
    job->attempts = 0;
    job->cancel_wanted = false;
    job->status = GW_JOB_QUEUED;
    job->updated_ms = job->run_at_ms = gw__jobs_now_ms();
    gw__jobs_schedule(j, job);
    job_persist(j, job, job->result, job->error);
    /* After its row: its workflow's members that ended with it wait for it again. */
    if (job->flow && ended)
        gw__jobs_flow_revive(j, job);
    gw__jobs_pump_task(j, t);
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The timer.                                                                          */

static void on_tick(uv_timer_t *timer);

/* The timer beats every GW_JOBS_TICK_MS.  A delayed job or a schedule tick due before
 * the next beat moves the beat to its time, so a 10 ms schedule runs every 10 ms and a
 * delay is kept to the millisecond rather than to the beat.  A tick that is already
 * due (its job could not be made yet) waits for the beat: no busy loop. */
static void arm_tick(gw_jobs *j, int64_t now)
{
    int64_t due = gw__jobs_schedules_next_ms(j);
    gw_deadline *top = gw_deadline_heap_top(&j->delayed);
    if (top && (due < 0 || (int64_t)top->when < due))
        due = (int64_t)top->when;
    if (due > now && due < now + (int64_t)GW_JOBS_TICK_MS)
        uv_timer_start(&j->tick, on_tick, (uint64_t)(due - now), GW_JOBS_TICK_MS);
}

static void on_tick(uv_timer_t *timer)
{
    gw_jobs *j = timer->data;
    int64_t now = gw__jobs_now_ms();
    gw_deadline *top;
    /* Delayed and failed jobs whose time has come join their queues; each task they
     * joined is pumped once. */
    size_t ntouched = 0;
    while ((top = gw_deadline_heap_top(&j->delayed)) && (int64_t)top->when <= now) {
        gw_job *job = GW_CONTAINER_OF(top, gw_job, timer);
        gw_deadline_heap_remove(&j->delayed, top);
        gw__jobs_schedule(j, job);
        if (!job->task->touched) {
            job->task->touched = true;
            ntouched++;
        }
    }
    while ((top = gw_deadline_heap_top(&j->leases)) && (int64_t)top->when <= now)
        gw__jobs_lease_expired(j, GW_CONTAINER_OF(top, gw_job, timer));
    gw__jobs_timeouts(j, now);
    if (!j->closing)
        gw__jobs_schedules_tick(j, now);
    /* Pumping frees no job, so the task table stays as it is meanwhile.  Tasks whose
     * spilled jobs waited for memory try again. */
    if (ntouched > 0 || j->refill_wanted || j->rate_waiting) {
        j->rate_waiting = false;
        j->refill_wanted = false;
        for (size_t i = 0; i < j->ntasks; i++) {
            gw_jobs_task *t = j->tasks[i];
            if (t->touched || t->nspilled > 0 || gw__jobs_rate_waiting(j, t)) {
                t->touched = false;
                gw__jobs_pump_task(j, t);
            }
        }
    }
    /* Finished jobs past their retention are forgotten, here and in the store. */
    for (unsigned n = 0; n < GW_JOBS_EXPIRE_BATCH && !gw_list_empty(&j->finished); n++) {
        gw_job *job = GW_CONTAINER_OF(j->finished.next, gw_job, link);
        if (job->updated_ms + (int64_t)j->cfg.retention_ms > now)
            break;
        if (gw__jobs_store_delete(j->store, job->seq, NULL, NULL) != 0)
            break; /* the store is busy: next tick */
        job_free(j, job);
    }
    gw__jobs_tasks_tick(j, now);
    gw__jobs_handoffs_tick(j, now);
    if (!j->closing)
        arm_tick(j, gw__jobs_now_ms());
}

/* ---------------------------------------------------------------------------------- */
/* Loading, life cycle.                                                                */

static void load_task(br_str name, bool is_public, void *arg)
{
    gw__jobs_task_loaded(arg, name, true, is_public);
}

/* One row of the store becomes a job in memory (its payload stays in the store until
 * the job is due and a worker runs its task).  A running job's lease died with the
 * gateway that gave it: it is queued again. */
static void load_row(const gw_job_row *r, void *arg)
{
    gw_jobs *j = arg;
    gw_jobs_task *t = gw__jobs_task_find(j, r->task);
    if (!t)
        t = gw__jobs_task_loaded(j, r->task, false, false);
    if (r->seq == 0 || r->id.len == 0 || r->id.len > GW_JOB_ID_MAX) {
        gw_log(GW_LOG_WARN, "jobs", "a job row without a valid id ignored");
        return;
    }
    gw_job *job = t ? job_new(j, t) : NULL;
    if (!job) {
        gw_log(GW_LOG_ERROR, "jobs", "job %.*s from the store dropped: its task cannot be kept",
               (int)r->id.len, r->id.ptr);
        return;
    }
    job->seq = r->seq;
    memcpy(job->id, r->id.ptr, r->id.len);
    job->id_len = (uint8_t)r->id.len;
    job->payload_len = r->payload_len;
    if (r->idem_key.len > 0) {
        job->has_key = true;
        key_digest(t, r->idem_key, job->idem);
    }
    job->status = r->status == GW_JOB_RUNNING ? GW_JOB_QUEUED : r->status;
    job->attempts = r->attempts;
    job->run_at_ms = r->run_at_ms;
    job->updated_ms = r->updated_ms;
    job->durable = true;
    if (owner_set(job, r->identity) != 0 || gw__jobs_find_seq(j, job->seq) ||
        job_index(j, job) != 0) {
        gw_log(GW_LOG_WARN, "jobs", "job %s from the store dropped: duplicate id or index full",
               job->id);
        job_release(j, job);
        return;
    }
    gw__jobs_detail_set(j, job, r->result, r->error);
    gw_list_push_back(&j->all, &job->all);
    j->njobs++;
    if (job->seq > j->last_seq)
        j->last_seq = job->seq;
    if (r->links.len > 0)
        gw__jobs_flow_load(j, job, r->links);
    if (finished(job)) {
        gw_list_push_back(&j->finished, &job->link);
    } else {
        t->unfinished++;
        t->bytes += job->payload_len;
        if (job->status == GW_JOB_WAITING) /* gw__jobs_flows_recover looks at it */
            gw_list_push_back(&j->waiting, &job->link);
        else
            gw__jobs_schedule(j, job);
    }
}

/* Jobs of a gateway that died came in (load_row has them): waiting workflow members
 * whose parents ended advance, and due jobs go to workers with credit. */
static void on_adopted(void *arg, size_t n)
{
    gw_jobs *j = arg;
    if (n == 0 || j->closing)
        return;
    gw__jobs_flows_recover(j);
    /* Jobs still at (or done by) workers of the dead gateway are not sent again. */
    gw__jobs_handoffs_adopted(j);
    for (size_t i = 0; i < j->ntasks; i++)
        gw__jobs_pump_task(j, j->tasks[i]);
}

/* Another gateway of the shared queue recorded a cancel or retry of job seq, which is
 * ours (docs/jobs.md, "Several gateways on one PostgreSQL queue"): applied as the
 * route would, so a running job's worker is told to stop.  That gateway answered
 * already; what the state no longer allows (the job ended, or runs again meanwhile)
 * is dropped, and logged. */
static void on_requested(void *arg, uint64_t seq, unsigned what)
{
    gw_jobs *j = arg;
    gw_job *job = gw__jobs_find_seq(j, seq);
    if (!job || !job->durable) {
        gw_log(GW_LOG_WARN, "jobs",
               "a request for job %" PRIu64 " came, and this gateway "
               "does not hold it: dropped",
               seq);
        return;
    }
    int rc = 0;
    if (what & GW_JOBS_REQUEST_CANCEL) {
        rc = gw__jobs_cancel(j, job);
        gw_log(GW_LOG_INFO, "jobs", "job %s: cancel asked at another gateway: %s", job->id,
               rc < 0    ? "it had ended"
               : rc == 0 ? "cancelled"
                         : "its worker is asked to stop");
    }
    if ((what & GW_JOBS_REQUEST_RETRY) && !j->closing) {
        rc = gw__jobs_retry(j, job);
        gw_log(rc == 0 ? GW_LOG_INFO : GW_LOG_WARN, "jobs",
               "job %s: retry asked at another gateway: %s", job->id,
               rc == 0 ? "queued again" : br_strerror(rc));
    }
}

/* True when there is a store path and every field that bounds something is set
 * (fsync 0 is a choice). */
static bool config_valid(const gw_jobs_config *c)
{
    return c->db && c->db[0] && c->retention_ms && c->max_attempts && c->lease_ms &&
           c->backoff_ms && c->backoff_cap_ms && c->task_limit && c->memory && c->task_bytes &&
           c->task_grace_ms && c->gateway_lease_ms;
}

static void on_abandoned(void *arg)
{
    gw_jobs *j = arg;
    gw_jobs_destroy(&j);
}

/* A start that failed once the store and the timer were open: both close on the loop
 * and the queue frees itself after (a handle may only be freed once closed).  The
 * routes leave at once, since the caller may destroy the router before the loop runs
 * again.  NULL, for gw_jobs_new to return. */
static gw_jobs *abandon(gw_jobs *j)
{
    gw__jobs_routes_remove(j);
    gw__jobs_schedule_routes_remove(j);
    gw_jobs_shutdown(j, on_abandoned, j);
    return NULL;
}

gw_jobs *gw_jobs_new(uv_loop_t *loop, gw_router *router, gw_broker *broker,
                     const gw_jobs_config *cfg)
{
    if (!cfg || !config_valid(cfg)) {
        gw_log(GW_LOG_ERROR, "jobs", "gw_jobs_new: no store path or a zero limit");
        return NULL;
    }
    if (sodium_init() < 0) {
        gw_log(GW_LOG_ERROR, "jobs", "sodium_init failed: no random job ids");
        return NULL;
    }
    gw_jobs *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->cfg = *cfg;
    j->loop = loop;
    j->router = router;
    j->broker = broker;
    j->db = strdup(j->cfg.db);
    j->cfg.db = j->db;
    j->byid = gw_idmap_new(GW_JOBS_MAX);
    j->bykey = gw_idmap_new(GW_JOBS_MAX);
    j->bytask = gw_idmap_new(GW_JOBS_MAX + GW_JOBS_MAX_TASKS);
    j->byflow = gw_idmap_new(GW_JOBS_MAX);
    gw_deadline_heap_init(&j->delayed, GW_JOBS_MAX);
    gw_deadline_heap_init(&j->leases, GW_JOBS_MAX);
    gw_list_init(&j->finished);
    gw_list_init(&j->waiting);
    gw_list_init(&j->flow_asks);
    gw_list_init(&j->all);
    gw_list_init(&j->schedules);
    gw_list_init(&j->grace);
    gw_list_init(&j->parked);
    j->scratch.max = br_limits_default.max_message;
    j->rng = ((uint64_t)gw__jobs_now_ms() * 0x9E3779B97F4A7C15ull) | 1;
    if (!j->db || !j->byid || !j->bykey || !j->bytask || !j->byflow) {
        gw_log(GW_LOG_ERROR, "jobs", "gw_jobs_new: out of memory");
        gw_jobs_destroy(&j);
        return NULL;
    }
    /* A URL may hold a password: logs name the kind of store, not the URL. */
    const char *shown = gw__jobs_store_is_pg(j->db) ? "(PostgreSQL)" : j->db;
    j->store = gw__jobs_store_is_pg(j->db)
                   ? gw__jobs_pg_open(loop, j->db, j->cfg.gateway_lease_ms)
                   : gw__jobs_sqlite_open(loop, j->db,
                                          j->cfg.fsync ? GW_JOBS_SYNC_FULL : GW_JOBS_SYNC_NORMAL);
    if (!j->store) {
        gw_log(GW_LOG_ERROR, "jobs", "cannot open the job store %s", shown);
        gw_jobs_destroy(&j);
        return NULL;
    }
    /* From here the store and the timer are handles on the loop: a failure must close
     * them there (abandon), never free them under it. */
    uv_timer_init(loop, &j->tick);
    j->tick.data = j;
    if (gw__jobs_store_load(j->store, load_row, load_task, j) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "cannot read the job store %s", shown);
        return abandon(j);
    }
    if (gw__jobs_schedules_load(j) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "cannot read the schedules of %s", shown);
        return abandon(j);
    }
    if (gw__jobs_routes_add(j) != 0 || gw__jobs_schedule_routes_add(j) != 0 ||
        gw__jobs_flow_routes_add(j) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "cannot add the /jobs routes");
        return abandon(j);
    }
    if (gw_broker_attach(broker, &gw__jobs_hooks, j) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "cannot attach to the broker");
        return abandon(j);
    }
    gw__jobs_flows_recover(j);
    if (j->store->seq_floor > j->last_seq)
        j->last_seq = j->store->seq_floor;
    if (gw__jobs_store_watch(j->store, load_row, on_adopted, on_requested, j) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "cannot watch the job store %s", shown);
        return abandon(j);
    }
    uv_timer_start(&j->tick, on_tick, GW_JOBS_TICK_MS, GW_JOBS_TICK_MS);
    gw_log(GW_LOG_INFO, "jobs", "store %s: %zu jobs, %zu tasks", shown, j->njobs, j->ntasks);
    return j;
}

/* The timer or the store has closed; close's callback runs after both. */
static void close_step_done(gw_jobs *j)
{
    if (--j->closes_pending == 0 && j->done)
        j->done(j->done_arg);
}

static void on_store_closed(void *arg)
{
    close_step_done(arg);
}

static void on_tick_closed(uv_handle_t *h)
{
    close_step_done(h->data);
}

void gw_jobs_shutdown(gw_jobs *self, void (*done)(void *arg), void *arg)
{
    if (self->closing)
        return;
    self->closing = true;
    self->done = done;
    self->done_arg = arg;
    gw_broker_detach(self->broker, self);
    /* Both start closing now, not the store after the timer: a caller that sweeps the
     * loop's leftover handles right after this call (main.c on a failed start) must
     * not find the store's handle open and close it under the store. */
    self->closes_pending = 2;
    uv_timer_stop(&self->tick);
    uv_close((uv_handle_t *)&self->tick, on_tick_closed);
    gw__jobs_store_shutdown(self->store, on_store_closed, self);
}

/* Frees every job on list (linked through `link`). */
static void free_list(gw_jobs *j, gw_list *list)
{
    while (!gw_list_empty(list))
        job_free(j, GW_CONTAINER_OF(list->next, gw_job, link));
}

void gw_jobs_destroy(gw_jobs **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_jobs *j = *self_p;
    gw__jobs_routes_remove(j);
    gw__jobs_schedule_routes_remove(j);
    gw__jobs_flow_routes_remove(j);
    gw__jobs_schedules_free(j);
    gw__jobs_workers_free(j);
    gw__jobs_handoffs_free(j);
    /* Every durable job is on one list or heap (jobs_int.h); the store ran every
     * insert's and read's callback at close.  Tasks stay until gw__jobs_tasks_free,
     * even retired ones losing their last job. */
    j->destroying = true;
    gw_deadline *top;
    while ((top = gw_deadline_heap_top(&j->delayed)))
        job_free(j, GW_CONTAINER_OF(top, gw_job, timer));
    while ((top = gw_deadline_heap_top(&j->leases)))
        job_free(j, GW_CONTAINER_OF(top, gw_job, timer));
    free_list(j, &j->finished);
    free_list(j, &j->waiting);
    for (size_t i = 0; i < j->ntasks; i++) {
        free_list(j, &j->tasks[i]->ready);
        free_list(j, &j->tasks[i]->spilled);
        free_list(j, &j->tasks[i]->loading);
    }
    gw__jobs_tasks_free(j);
    gw__jobs_store_destroy(&j->store);
    gw_idmap_destroy(&j->byid);
    gw_idmap_destroy(&j->bykey);
    gw_idmap_destroy(&j->bytask);
    gw__jobs_flows_free(j);
    gw_idmap_destroy(&j->byflow);
    gw_deadline_heap_free(&j->delayed);
    gw_deadline_heap_free(&j->leases);
    br_buf_free(&j->scratch);
    free(j->db);
    free(j);
    *self_p = NULL;
}
