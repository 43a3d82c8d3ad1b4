/*
 * jobs_flow.c - workflows (Celery's canvas): chains, groups and chords of jobs.
 *
 *   POST /workflows         a canvas -> 202 {"workflow_id", "status_url", "jobs": [...]}
 *   GET /workflows/{id}     {"id", "status", "jobs": [{"id", "task", "status", "parents"}]}
 *   DELETE /workflows/{id}  cancels every member not finished -> 202
 *
 * A canvas is a step: {"task": name, "args"?: value}, {"chain": [steps]},
 * {"group": [steps]} or {"chord": {"header": [steps], "body": step}}.  It is compiled
 * into members, each a job that knows the members whose results it takes (its
 * parents, always made before it).  A member without parents is queued at once; the
 * others are WAITING.  All of them are written in one transaction (insert_many), each
 * row carrying its links: the workflow id, its index, the workflow's size, and its
 * parents - so after a crash the store holds the whole workflow or nothing of it.
 *
 * When a member ends, its waiting children are looked at.  One whose parents all
 * succeeded reads their results back from the store (after the parent's own row:
 * reads follow the writes queued before them), gets its argument - the parent's result
 * (a chain), the list of results in order (after a group: a chord's body), and its own
 * "args" after them as [results, args] - and is queued by one update of its row
 * (status and payload at once).  One whose parent is dead is dead ("parent ... failed:
 * <error>"), one whose parent was cancelled is cancelled, and so on down the line.
 * A gateway that dies between a parent's row and its child's finds the child WAITING
 * with its parents ended at the next start, and does the same then
 * (gw__jobs_flows_recover): a chord's body is queued exactly once, by the one update
 * that takes it out of WAITING.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <sodium.h>

#include <barista/mpread.h>

#include "jobs_int.h"
#include "json.h"
#include "params.h"

/* Most parent links in one workflow (a group after a group multiplies them). */
#define FLOW_LINKS_MAX 100000u

/* ---------------------------------------------------------------------------------- */
/* The registry of workflows.                                                          */

static gw_jobs_flow *flow_find(gw_jobs *j, br_str id)
{
    if (id.len != GW_JOBS_FLOW_ID_LEN)
        return NULL;
    for (gw_jobs_flow *f = gw_idmap_get(j->byflow, gw__jobs_hash(id)); f; f = f->hash_next)
        if (memcmp(f->id, id.ptr, id.len) == 0)
            return f;
    return NULL;
}

/* A new workflow of `size` members with id `id` (32 hex digits), registered.  NULL when
 * out of memory or the map is full. */
static gw_jobs_flow *flow_new(gw_jobs *j, br_str id, uint32_t size)
{
    gw_jobs_flow *f = calloc(1, sizeof(*f));
    if (!f || !(f->members = calloc(size, sizeof(*f->members)))) {
        free(f);
        return NULL;
    }
    memcpy(f->id, id.ptr, GW_JOBS_FLOW_ID_LEN);
    f->size = size;
    f->hash = gw__jobs_hash(id);
    gw_jobs_flow *head = gw_idmap_take(j->byflow, f->hash);
    f->hash_next = head;
    if (gw_idmap_put(j->byflow, f->hash, f) != 0) {
        if (head)
            gw_idmap_put(j->byflow, f->hash, head);
        free(f->members);
        free(f);
        return NULL;
    }
    return f;
}

static void flow_free(gw_jobs *j, gw_jobs_flow *f)
{
    gw_jobs_flow *head = gw_idmap_take(j->byflow, f->hash);
    gw_jobs_flow **pp = &head;
    while (*pp && *pp != f)
        pp = &(*pp)->hash_next;
    if (*pp)
        *pp = f->hash_next;
    if (head)
        gw_idmap_put(j->byflow, f->hash, head);
    free(f->members);
    free(f);
}

void gw__jobs_flow_forget(gw_jobs *j, gw_job *job)
{
    gw_jobs_flow *f = job->flow;
    job->flow = NULL;
    f->members[job->flow_index] = NULL;
    if (--f->held == 0)
        flow_free(j, f);
}

void gw__jobs_flows_free(gw_jobs *j)
{
    (void)j; /* every workflow went with its last member */
}

/* ---------------------------------------------------------------------------------- */
/* Links: [workflow id, index, size, args, join, [parent indexes], parent job?] in     */
/* msgpack; the last only when a task made the workflow (rows before it have six).     */

static int buf_write(void *data, const char *buf, size_t len)
{
    return br_buf_append(data, buf, len) == 0 ? 0 : -1;
}

static void pack_links(br_buf *b, const gw_job *job)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, buf_write);
    size_t plen = strlen(job->flow->parent);
    msgpack_pack_array(&pk, plen ? 7 : 6);
    msgpack_pack_str(&pk, GW_JOBS_FLOW_ID_LEN);
    msgpack_pack_str_body(&pk, job->flow->id, GW_JOBS_FLOW_ID_LEN);
    msgpack_pack_uint32(&pk, job->flow_index);
    msgpack_pack_uint32(&pk, job->flow->size);
    if (job->flow_args)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    if (job->flow_join)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    msgpack_pack_array(&pk, job->nparents);
    for (uint32_t i = 0; i < job->nparents; i++)
        msgpack_pack_uint32(&pk, job->parents[i]);
    if (plen) {
        msgpack_pack_str(&pk, plen);
        msgpack_pack_str_body(&pk, job->flow->parent, plen);
    }
}

int gw__jobs_flow_load(gw_jobs *j, gw_job *job, br_str links)
{
    br_cursor c;
    br_cursor_init(&c, links.ptr, links.len);
    uint32_t n, np;
    br_str id;
    uint64_t index, size, p;
    bool args, join;
    gw_jobs_flow *f = NULL;
    if (br_cursor_array(&c, &n) != 0 || n < 6 || br_cursor_str(&c, &id, 64) != 0 ||
        id.len != GW_JOBS_FLOW_ID_LEN || br_cursor_uint(&c, &index) != 0 ||
        br_cursor_uint(&c, &size) != 0 || size == 0 || size > GW_JOBS_FLOW_MAX || index >= size ||
        br_cursor_bool(&c, &args) != 0 || br_cursor_bool(&c, &join) != 0 ||
        br_cursor_array(&c, &np) != 0 || np > index)
        goto bad;
    f = flow_find(j, id);
    if (f && (f->size != size || f->members[index]))
        goto bad;
    job->parents = np ? calloc(np, sizeof(*job->parents)) : NULL;
    if (np && !job->parents)
        goto bad;
    for (uint32_t i = 0; i < np; i++) {
        if (br_cursor_uint(&c, &p) != 0 || p >= index)
            goto bad;
        job->parents[i] = (uint32_t)p;
    }
    br_str parent = {0};
    if (n >= 7 && br_cursor_str(&c, &parent, GW_JOB_ID_MAX) != 0)
        goto bad;
    if (!f && !(f = flow_new(j, id, (uint32_t)size)))
        goto bad;
    if (parent.len && !f->parent[0]) {
        memcpy(f->parent, parent.ptr, parent.len);
        f->parent[parent.len] = '\0';
    }
    job->nparents = np;
    job->flow_args = args;
    job->flow_join = join;
    job->flow_index = (uint32_t)index;
    job->flow = f;
    f->members[index] = job;
    f->held++;
    return 0;
bad:
    free(job->parents);
    job->parents = NULL;
    gw_log(GW_LOG_WARN, "jobs", "job %s: its workflow links are unreadable", job->id);
    return BR_EVALUE;
}

/* ---------------------------------------------------------------------------------- */
/* Members ending, and their children.                                                 */

static void check_child(gw_jobs *j, gw_job *m);

/* A WAITING member (not advancing) ends without running: dead or cancelled, with
 * `error`; its own children follow. */
static void fail_member(gw_jobs *j, gw_job *m, uint8_t status, const char *error)
{
    m->updated_ms = gw__jobs_now_ms();
    gw__jobs_detail_set(j, m, (br_str){0}, br_str_c(error));
    gw__jobs_finish(j, m, status); /* off the waiting list, onto the finished one */
    gw__jobs_persist(j, m);
    gw__jobs_flow_ended(j, m);
}

void gw__jobs_flow_ended(gw_jobs *j, gw_job *job)
{
    gw_jobs_flow *f = job->flow;
    for (uint32_t i = job->flow_index + 1; f && i < f->size; i++) {
        gw_job *m = f->members[i];
        if (!m || m->status != GW_JOB_WAITING || m->advancing)
            continue;
        for (uint32_t k = 0; k < m->nparents; k++)
            if (m->parents[k] == job->flow_index) {
                check_child(j, m);
                break;
            }
    }
}

int gw__jobs_flow_cancel_waiting(gw_jobs *j, gw_job *job)
{
    if (job->advancing) {
        job->cancel_wanted = true; /* its read's or write's end cancels it */
        return 1;
    }
    fail_member(j, job, GW_JOB_CANCELLED, "cancelled");
    return 0;
}

/* Reading a member's own argument and its parents' results, then queueing it. */
typedef struct advance {
    gw_jobs *owner; /* the queue */
    uint64_t seq;   /* the member (found again: it may have changed meanwhile) */
    br_str args;    /* its own argument (owned), when it has one */
} advance;

static void advance_free(advance *a)
{
    free((void *)a->args.ptr);
    free(a);
}

/* The member a callback is about, if it still waits for it; else NULL (a is freed). */
static gw_job *advance_member(advance *a)
{
    gw_job *m = gw__jobs_find_seq(a->owner, a->seq);
    if (m && m->status == GW_JOB_WAITING && m->advancing)
        return m;
    advance_free(a);
    return NULL;
}

/* The advance of m stopped: it is waiting again, and a cancel that came meanwhile or
 * the failure `error` (when not NULL) ends it. */
static void advance_stop(gw_jobs *j, gw_job *m, const char *error)
{
    m->advancing = false;
    if (m->cancel_wanted) {
        m->cancel_wanted = false;
        fail_member(j, m, GW_JOB_CANCELLED, "cancelled");
    } else if (error) {
        gw_log(GW_LOG_ERROR, "jobs", "job %s: %s", m->id, error);
        fail_member(j, m, GW_JOB_DEAD, error);
    }
}

static void on_advanced(void *arg, int status)
{
    advance *a = arg;
    gw_jobs *j = a->owner;
    gw_job *m = advance_member(a);
    if (!m)
        return;
    advance_free(a);
    if (status != 0) {
        gw__jobs_payload_drop(j, m);
        advance_stop(j, m, "its parents' results could not be stored");
        return;
    }
    m->advancing = false;
    m->status = GW_JOB_QUEUED;
    gw_list_remove(&m->link); /* off the waiting list */
    gw__jobs_schedule(j, m);
    if (!j->closing)
        gw__jobs_pump_task(j, m->task);
    if (m->cancel_wanted) {
        m->cancel_wanted = false;
        gw__jobs_cancel(j, m);
    }
}

/* Packs m's new argument into b: the parents' result (one, or the list), and after
 * it m's own args as [results, args].  0, or nonzero when b is full. */
static int pack_argument(br_buf *b, const gw_job *m, const gw_job_row *rows, size_t n, br_str args)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, buf_write);
    int rc = 0;
    if (m->flow_args)
        rc |= msgpack_pack_array(&pk, 2);
    if (m->flow_join || n != 1)
        rc |= msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        if (rows[i].result.len > 0)
            rc |= br_buf_append(b, rows[i].result.ptr, rows[i].result.len);
        else
            rc |= msgpack_pack_nil(&pk);
    }
    if (m->flow_args)
        rc |= br_buf_append(b, args.len ? args.ptr : "\xc0", args.len ? args.len : 1);
    return rc;
}

static void on_results(void *arg, int status, const gw_job_row *rows, size_t n)
{
    advance *a = arg;
    gw_jobs *j = a->owner;
    gw_job *m = advance_member(a);
    if (!m)
        return;
    bool missing = status != 0 || n != m->nparents;
    for (size_t i = 0; !missing && i < n; i++)
        missing = rows[i].seq == 0;
    if (missing || m->cancel_wanted || j->closing) {
        advance_free(a);
        advance_stop(j, m, missing ? "its parents' results could not be read" : NULL);
        return;
    }
    br_buf b = {.max = br_limits_default.max_body};
    if (pack_argument(&b, m, rows, n, a->args) != 0 || b.len == 0) {
        br_buf_free(&b);
        advance_free(a);
        advance_stop(j, m, "its parents' results are too large for its argument");
        return;
    }
    /* The new argument is held as a job's being inserted is, until the row is durable. */
    m->task->bytes += b.len - m->payload_len;
    m->payload = (br_str){(const char *)b.data, (uint32_t)b.len};
    m->payload_len = (uint32_t)b.len;
    m->payload_in = GW_PAYLOAD_INSERTING;
    j->insert_bytes += b.len;
    m->updated_ms = m->run_at_ms = gw__jobs_now_ms();
    gw_job_row r = {
        .seq = m->seq,
        .id = {m->id, m->id_len},
        .task = br_str_c(m->task->name),
        .payload = m->payload,
        .payload_len = m->payload_len,
        .set_payload = true,
        .status = GW_JOB_QUEUED,
        .attempts = m->attempts,
        .run_at_ms = m->run_at_ms,
        .updated_ms = m->updated_ms,
    };
    if (gw__jobs_store_update(j->store, &r, on_advanced, a) != 0) {
        advance_free(a);
        gw__jobs_payload_drop(j, m);
        advance_stop(j, m, "its parents' results could not be stored");
    }
}

/* Reads the parents' results of m (after its own argument, when it has one). */
static void read_results(gw_jobs *j, gw_job *m, advance *a)
{
    uint64_t *seqs = calloc(m->nparents, sizeof(*seqs));
    if (!seqs) {
        advance_free(a);
        advance_stop(j, m, "out of memory");
        return;
    }
    for (uint32_t i = 0; i < m->nparents; i++)
        seqs[i] = m->flow->members[m->parents[i]]->seq;
    int rc = gw__jobs_store_read(j->store, seqs, m->nparents, GW_JOBS_READ_DETAIL, on_results, a);
    free(seqs);
    if (rc != 0) {
        advance_free(a);
        advance_stop(j, m, "its parents' results could not be read");
    }
}

static void on_args(void *arg, int status, const gw_job_row *rows, size_t n)
{
    advance *a = arg;
    gw_jobs *j = a->owner;
    gw_job *m = advance_member(a);
    if (!m)
        return;
    if (status != 0 || n != 1 || rows[0].seq == 0) {
        advance_free(a);
        advance_stop(j, m, "its own argument could not be read");
        return;
    }
    char *copy = rows[0].payload.len ? malloc(rows[0].payload.len) : NULL;
    if (rows[0].payload.len && !copy) {
        advance_free(a);
        advance_stop(j, m, "out of memory");
        return;
    }
    if (copy)
        memcpy(copy, rows[0].payload.ptr, rows[0].payload.len);
    a->args = (br_str){copy, copy ? rows[0].payload.len : 0};
    read_results(j, m, a);
}

/* Every parent of m succeeded: its argument is made and it is queued. */
static void advance_start(gw_jobs *j, gw_job *m)
{
    advance *a = calloc(1, sizeof(*a));
    if (!a) {
        fail_member(j, m, GW_JOB_DEAD, "out of memory");
        return;
    }
    a->owner = j;
    a->seq = m->seq;
    m->advancing = true;
    if (!m->flow_args) {
        read_results(j, m, a);
        return;
    }
    if (gw__jobs_store_read(j->store, &m->seq, 1, GW_JOBS_READ_PAYLOAD, on_args, a) != 0) {
        advance_free(a);
        advance_stop(j, m, "its own argument could not be read");
    }
}

/* Looks at a WAITING member whose parent ended: it fails with a failed or cancelled
 * parent, and runs once all of them succeeded. */
static void check_child(gw_jobs *j, gw_job *m)
{
    char why[GW_JOBS_ERROR_MAX];
    for (uint32_t k = 0; k < m->nparents; k++) {
        const gw_job *p = m->flow->members[m->parents[k]];
        if (!p) {
            fail_member(j, m, GW_JOB_DEAD, "a parent expired before it ran");
            return;
        }
        if (p->status == GW_JOB_DEAD) {
            snprintf(why, sizeof(why), "parent %s (%s) failed: %.*s", p->id, p->task->name,
                     p->detail_on_disk ? 0 : (int)p->error.len, p->error.ptr ? p->error.ptr : "");
            fail_member(j, m, GW_JOB_DEAD, why);
            return;
        }
        if (p->status == GW_JOB_CANCELLED) {
            snprintf(why, sizeof(why), "parent %s (%s) was cancelled", p->id, p->task->name);
            fail_member(j, m, GW_JOB_CANCELLED, why);
            return;
        }
    }
    for (uint32_t k = 0; k < m->nparents; k++)
        if (m->flow->members[m->parents[k]]->status != GW_JOB_SUCCEEDED)
            return;
    advance_start(j, m);
}

bool gw__jobs_flow_may_retry(const gw_job *job)
{
    for (uint32_t k = 0; k < job->nparents; k++) {
        const gw_job *p = job->flow->members[job->parents[k]];
        if (!p || p->status != GW_JOB_SUCCEEDED)
            return false;
    }
    return true;
}

void gw__jobs_flow_revive(gw_jobs *j, gw_job *job)
{
    gw_jobs_flow *f = job->flow;
    bool *down = calloc(f->size, sizeof(*down));
    if (!down) {
        gw_log(GW_LOG_ERROR, "jobs", "job %s: out of memory: its workflow stays as it is", job->id);
        return;
    }
    down[job->flow_index] = true;
    int64_t now = gw__jobs_now_ms();
    /* Parents come before their children: one pass in order finds every member that
     * ended, never having run, because of job or of one revived before it. */
    for (uint32_t i = job->flow_index + 1; i < f->size; i++) {
        gw_job *m = f->members[i];
        if (!m || m->attempts != 0 || (m->status != GW_JOB_DEAD && m->status != GW_JOB_CANCELLED))
            continue;
        bool reached = false;
        for (uint32_t k = 0; k < m->nparents && !reached; k++)
            reached = down[m->parents[k]];
        if (!reached)
            continue;
        down[i] = true;
        m->task->unfinished++;
        m->task->bytes += m->payload_len;
        gw_list_remove(&m->link); /* off the finished list */
        gw_list_push_back(&j->waiting, &m->link);
        m->status = GW_JOB_WAITING;
        m->cancel_wanted = false;
        m->updated_ms = now;
        gw__jobs_detail_set(j, m, (br_str){0}, (br_str){0});
        gw__jobs_persist(j, m);
    }
    free(down);
}

void gw__jobs_flows_recover(gw_jobs *j)
{
    size_t n = 0;
    for (gw_list *l = j->waiting.next; l != &j->waiting; l = l->next)
        n++;
    if (n == 0)
        return;
    uint64_t *seqs = calloc(n, sizeof(*seqs));
    if (!seqs) {
        gw_log(GW_LOG_ERROR, "jobs", "out of memory: waiting workflow members wait on");
        return;
    }
    size_t i = 0;
    for (gw_list *l = j->waiting.next; l != &j->waiting; l = l->next)
        seqs[i++] = GW_CONTAINER_OF(l, gw_job, link)->seq;
    /* By sequence number: a member checked may end others of the list. */
    for (i = 0; i < n; i++) {
        gw_job *m = gw__jobs_find_seq(j, seqs[i]);
        if (!m || m->status != GW_JOB_WAITING || m->advancing)
            continue;
        if (!m->flow)
            fail_member(j, m, GW_JOB_DEAD, "its workflow links are unreadable");
        else if (m->nparents == 0)
            fail_member(j, m, GW_JOB_DEAD, "a waiting workflow member without parents");
        else
            check_child(j, m);
    }
    free(seqs);
}

/* ---------------------------------------------------------------------------------- */
/* Compiling a canvas.                                                                 */

/* One member to be. */
typedef struct fnode {
    br_str task;       /* its task name (in the request's msgpack) */
    br_str args;       /* its own argument's msgpack bytes, when has_args */
    bool has_args;     /* "args" was given */
    bool join;         /* its parents' results come as a list */
    uint32_t np;       /* parents */
    uint32_t *parents; /* their indexes (owned) */
} fnode;

/* A set of member indexes: what a step's members give to the step after it. */
typedef struct fset {
    uint32_t *v; /* indexes (owned) */
    uint32_t n;  /* entries */
    bool group;  /* they came from a group: the next step takes them as a list */
} fset;

typedef struct fbuild {
    fnode nodes[GW_JOBS_FLOW_MAX]; /* the members, in order */
    uint32_t n;                    /* entries */
    size_t links;                  /* parent links so far (FLOW_LINKS_MAX) */
    char err[200];                 /* what is wrong with the canvas */
} fbuild;

static int fset_add(fset *s, const uint32_t *v, uint32_t n)
{
    uint32_t *grown = realloc(s->v, ((size_t)s->n + n + 1) * sizeof(*grown));
    if (!grown)
        return BR_ENOMEM;
    s->v = grown;
    if (n)
        memcpy(s->v + s->n, v, (size_t)n * sizeof(*v));
    s->n += n;
    return 0;
}

static int bad(fbuild *b, const char *msg)
{
    snprintf(b->err, sizeof(b->err), "%s", msg);
    return BR_EVALUE;
}

static int compile(fbuild *b, br_cursor *c, const fset *in, fset *out, unsigned depth);

/* A list of steps: run one after the other (chain) or side by side (group). */
static int compile_list(fbuild *b, br_cursor *c, const fset *in, fset *out, unsigned depth,
                        bool chain)
{
    uint32_t n;
    if (br_cursor_array(c, &n) != 0)
        return bad(b,
                   chain ? "\"chain\" must be a list of steps" : "a group must be a list of steps");
    if (n == 0)
        return bad(b, chain ? "\"chain\" is empty" : "a group is empty");
    fset cur = {0};
    int rc = fset_add(&cur, in->v, in->n);
    cur.group = in->group;
    *out = (fset){0};
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        fset o = {0};
        rc = compile(b, c, chain ? &cur : in, &o, depth + 1);
        if (rc == 0 && chain) {
            free(cur.v);
            cur = o;
        } else {
            if (rc == 0)
                rc = fset_add(out, o.v, o.n);
            free(o.v);
        }
    }
    if (chain && rc == 0) {
        *out = cur;
        return 0;
    }
    free(cur.v);
    out->group = true;
    return rc;
}

static int compile(fbuild *b, br_cursor *c, const fset *in, fset *out, unsigned depth)
{
    uint32_t n;
    if (depth > GW_JOBS_FLOW_DEPTH)
        return bad(b, "the workflow is nested too deeply");
    if (br_cursor_map(c, &n) != 0)
        return bad(b, "a workflow step must be an object");
    br_str task = {0}, args = {0};
    bool has_task = false, has_args = false;
    br_cursor chain = {0}, group = {0}, chord = {0};
    unsigned kinds = 0;
    for (uint32_t i = 0; i < n; i++) {
        br_str key;
        if (br_cursor_str(c, &key, 64) != 0)
            return bad(b, "a workflow step's keys must be text");
        br_cursor at = *c;
        if (br_cursor_skip(c, BR_CURSOR_MAX_DEPTH) != 0)
            return bad(b, "a workflow step is not well-formed");
        if (br_str_eq(key, "task")) {
            if (br_cursor_str(&at, &task, 255) != 0 || task.len == 0)
                return bad(b, "\"task\" must be a task name");
            has_task = true;
            kinds++;
        } else if (br_str_eq(key, "args")) {
            args = (br_str){(const char *)at.p, (uint32_t)(c->p - at.p)};
            has_args = true;
        } else if (br_str_eq(key, "chain")) {
            chain = at;
            kinds++;
        } else if (br_str_eq(key, "group")) {
            group = at;
            kinds++;
        } else if (br_str_eq(key, "chord")) {
            chord = at;
            kinds++;
        } else {
            snprintf(b->err, sizeof(b->err),
                     "unknown key \"%.*s\" in a workflow step (task, args, chain, group, chord)",
                     (int)key.len, key.ptr);
            return BR_EVALUE;
        }
    }
    if (kinds != 1)
        return bad(b, "a workflow step has exactly one of task, chain, group and chord");
    if (has_args && !has_task)
        return bad(b, "\"args\" belongs to a task step");
    if (chain.p)
        return compile_list(b, &chain, in, out, depth, true);
    if (group.p)
        return compile_list(b, &group, in, out, depth, false);
    if (chord.p) {
        br_cursor header = {0}, body = {0};
        if (br_cursor_map(&chord, &n) != 0)
            return bad(b, "\"chord\" must be an object with header and body");
        for (uint32_t i = 0; i < n; i++) {
            br_str key;
            if (br_cursor_str(&chord, &key, 64) != 0)
                return bad(b, "\"chord\" must be an object with header and body");
            if (br_str_eq(key, "header"))
                header = chord;
            else if (br_str_eq(key, "body"))
                body = chord;
            else
                return bad(b, "\"chord\" has only header and body");
            if (br_cursor_skip(&chord, BR_CURSOR_MAX_DEPTH) != 0)
                return bad(b, "a workflow step is not well-formed");
        }
        if (!header.p || !body.p)
            return bad(b, "\"chord\" needs a header (a list of steps) and a body (a step)");
        fset h = {0};
        int rc = compile_list(b, &header, in, &h, depth, false);
        if (rc == 0)
            rc = compile(b, &body, &h, out, depth + 1);
        free(h.v);
        return rc;
    }
    if (b->n >= GW_JOBS_FLOW_MAX)
        return bad(b, "a workflow has at most 1000 members");
    if ((b->links += in->n) > FLOW_LINKS_MAX)
        return bad(b, "a workflow has at most 100000 links between its members");
    fnode *node = &b->nodes[b->n];
    *node = (fnode){.task = task, .args = args, .has_args = has_args, .join = in->group};
    if (in->n) {
        node->parents = malloc((size_t)in->n * sizeof(*node->parents));
        if (!node->parents)
            return BR_ENOMEM;
        memcpy(node->parents, in->v, (size_t)in->n * sizeof(*in->v));
        node->np = in->n;
    }
    uint32_t self = b->n++;
    *out = (fset){0};
    return fset_add(out, &self, 1);
}

static void fbuild_free(fbuild *b)
{
    for (uint32_t i = 0; i < b->n; i++)
        free(b->nodes[i].parents);
    free(b);
}

/* ---------------------------------------------------------------------------------- */
/* Making a workflow: POST /workflows, and WORKFLOW from a handler or a task.          */

/* A workflow being written: whoever asked waits for it. */
typedef struct creating {
    gw_jobs *owner;    /* the queue */
    gw_req *req;       /* POST /workflows: the client; NULL once it left */
    gw_worker *worker; /* WORKFLOW: its sender; NULL once it went */
    uint64_t msg_id;   /* the WORKFLOW's id */
    gw_list link;      /* in owner->flow_asks while a worker waits */
    uint32_t n;        /* members */
    uint64_t seqs[];   /* theirs */
} creating;

static void on_create_abort(gw_req *req, void *arg)
{
    (void)req;
    ((creating *)arg)->req = NULL;
}

void gw__jobs_flow_worker_gone(gw_jobs *j, gw_worker *w)
{
    for (gw_list *l = j->flow_asks.next; l != &j->flow_asks; l = l->next) {
        creating *cr = GW_CONTAINER_OF(l, creating, link);
        if (cr->worker == w)
            cr->worker = NULL;
    }
}

/* Answers the worker that sent a WORKFLOW (when it is still there). */
static void worker_answer(gw_jobs *j, gw_worker *w, uint64_t id, uint16_t status,
                          const char *flow_id, const char *detail)
{
    br_workflow_reply r = {.id = id,
                           .status = status,
                           .workflow_id = br_str_c(flow_id ? flow_id : ""),
                           .detail = br_str_c(detail ? detail : "")};
    int rc = w ? gw_broker_send_workflow_reply(j->broker, w, &r) : 0;
    if (rc != 0)
        gw_log(GW_LOG_WARN, "jobs", "WORKFLOW_REPLY to %s: %s", w->id, br_strerror(rc));
}

static void on_created(void *arg, int status)
{
    creating *cr = arg;
    gw_jobs *j = cr->owner;
    gw_job *first = gw__jobs_find_seq(j, cr->seqs[0]);
    br_buf *b = &j->scratch;
    b->len = 0;
    int rc = 0;
    char flow_id[GW_JOBS_FLOW_ID_LEN + 1] = "";
    if (status == 0 && first) {
        memcpy(flow_id, first->flow->id, sizeof(flow_id));
        char head[160];
        snprintf(head, sizeof(head),
                 "{\"workflow_id\":\"%s\",\"status_url\":\"/workflows/%s\",\"jobs\":[", flow_id,
                 flow_id);
        rc = br_buf_append(b, head, strlen(head));
    }
    for (uint32_t i = 0; i < cr->n; i++) {
        gw_job *job = gw__jobs_find_seq(j, cr->seqs[i]);
        if (!job)
            continue;
        if (status != 0) {
            gw__jobs_unmake(j, job);
            continue;
        }
        gw__jobs_made_durable(j, job);
        j->stats.accepted++;
        if (rc == 0)
            rc = br_buf_append(b, i ? ",\"" : "\"", i ? 2 : 1);
        if (rc == 0)
            rc = br_buf_append(b, job->id, job->id_len);
        if (rc == 0)
            rc = br_buf_append(b, "\"", 1);
    }
    if (rc == 0)
        rc = br_buf_append(b, "]}", 2);
    static const char unstored[] = "Service Unavailable: the workflow could not be stored";
    if (cr->req) {
        gw_req_on_abort(cr->req, NULL, NULL);
        if (status != 0 || !first)
            gw_req_respond_error(cr->req, 503, true, unstored);
        else if (rc != 0)
            gw_req_respond_detail(cr->req, 500, "Internal Server Error");
        else {
            char location[64];
            int ln = snprintf(location, sizeof(location), "/workflows/%s", flow_id);
            gw_header h = {"Location", 8, location, (size_t)ln};
            gw_req_respond(cr->req, 202, &h, 1, "application/json", b->data, b->len);
        }
    }
    if (cr->link.next) {
        gw_list_remove(&cr->link);
        bool made = status == 0 && first;
        worker_answer(j, cr->worker, cr->msg_id, made ? 202 : 503, made ? flow_id : NULL,
                      made ? NULL : unstored);
    }
    free(cr);
}

/* Makes the members of b as jobs of workflow `id` (linked to `parent` when not NULL);
 * 0, or an HTTP status (the caller answers) with *detail.  The made jobs are in
 * made[0..*nmade). */
static int make_members(gw_jobs *j, fbuild *b, br_str identity, bool public_only,
                        const gw_job *parent, gw_job **made, uint32_t *nmade, const char **detail)
{
    char rnd[16], id[GW_JOBS_FLOW_ID_LEN];
    static const char hex[] = "0123456789abcdef";
    randombytes_buf(rnd, sizeof(rnd));
    for (int i = 0; i < 16; i++) {
        id[2 * i] = hex[(uint8_t)rnd[i] >> 4];
        id[2 * i + 1] = hex[(uint8_t)rnd[i] & 15];
    }
    gw_jobs_flow *f = flow_new(j, (br_str){id, GW_JOBS_FLOW_ID_LEN}, b->n);
    if (!f) {
        *detail = "Service Unavailable: out of memory";
        return 503;
    }
    if (parent)
        memcpy(f->parent, parent->id, parent->id_len + 1u);
    *nmade = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        fnode *nd = &b->nodes[i];
        gw_jobs_task *t =
            public_only ? gw__jobs_task_public(j, nd->task) : gw__jobs_task_open(j, nd->task);
        if (!t) {
            snprintf(b->err, sizeof(b->err), "Unknown task \"%.*s\" in the workflow",
                     (int)nd->task.len, nd->task.ptr);
            *detail = b->err;
            if (!f->held)
                flow_free(j, f);
            return 422;
        }
        gw_job *job;
        int rc = gw__jobs_make(j, t, nd->has_args ? nd->args : br_str_c("\xc0"), identity,
                               nd->np ? GW_JOB_WAITING : GW_JOB_QUEUED, &job);
        if (rc != 0) {
            *detail = rc == BR_EFULL    ? "Service Unavailable: too many jobs queued"
                      : rc == BR_ELIMIT ? "Service Unavailable: too many job bytes held"
                                        : "Service Unavailable: out of memory";
            if (!f->held)
                flow_free(j, f);
            return 503;
        }
        made[(*nmade)++] = job;
        job->flow = f;
        job->flow_index = i;
        job->parents = nd->parents;
        job->nparents = nd->np;
        nd->parents = NULL;
        nd->np = 0;
        job->flow_args = nd->has_args;
        job->flow_join = nd->join;
        f->members[i] = job;
        f->held++;
    }
    return 0;
}

/* Writes the made members in one transaction; *out hears of it (on_created).  0, or
 * 503 with *detail. */
static int write_members(gw_jobs *j, gw_job **made, uint32_t nmade, creating **out,
                         const char **detail)
{
    creating *cr = calloc(1, sizeof(*cr) + (size_t)nmade * sizeof(uint64_t));
    gw_job_row *rows = calloc(nmade, sizeof(*rows));
    size_t *at = calloc(nmade + 1, sizeof(*at));
    br_buf links = {0};
    int status = 0;
    if (!cr || !rows || !at) {
        status = 503;
        *detail = "Service Unavailable: out of memory";
        goto done;
    }
    for (uint32_t i = 0; i < nmade; i++) {
        at[i] = links.len;
        pack_links(&links, made[i]);
    }
    at[nmade] = links.len;
    for (uint32_t i = 0; i < nmade; i++) {
        gw_job *job = made[i];
        rows[i] = (gw_job_row){
            .seq = job->seq,
            .id = {job->id, job->id_len},
            .task = br_str_c(job->task->name),
            .payload = job->payload,
            .payload_len = job->payload_len,
            .status = job->status,
            .run_at_ms = job->run_at_ms,
            .updated_ms = job->updated_ms,
            .identity = job->identity,
            .links = {(const char *)links.data + at[i], (uint32_t)(at[i + 1] - at[i])},
        };
        cr->seqs[i] = job->seq;
    }
    cr->owner = j;
    cr->n = nmade;
    int rc = gw__jobs_store_insert_many(j->store, rows, nmade, on_created, cr);
    if (rc != 0) {
        status = 503;
        *detail = rc == BR_EFULL ? "Service Unavailable: too many jobs queued"
                                 : "Service Unavailable: out of memory";
    }
done:
    if (status != 0) {
        free(cr);
        cr = NULL;
    }
    *out = cr;
    br_buf_free(&links);
    free(at);
    free(rows);
    return status;
}

/* Compiles `canvas` (one msgpack step) and writes its members, owned by `identity`,
 * of public tasks only or of any open one, linked to `parent` when not NULL.  0 when
 * the write is under way: *out (filled in by the caller before the loop runs again)
 * hears how it ended.  Otherwise an HTTP status with the reason in err. */
static int flow_create(gw_jobs *j, br_str canvas, br_str identity, bool public_only,
                       const gw_job *parent, creating **out, char *err, size_t err_len)
{
    *out = NULL;
    fbuild *b = calloc(1, sizeof(*b));
    gw_job **made = calloc(GW_JOBS_FLOW_MAX, sizeof(*made));
    uint32_t nmade = 0;
    int status = 0;
    const char *detail = NULL;
    fset res = {0}, none = {0};
    if (!b || !made) {
        status = 503;
        detail = "Service Unavailable: out of memory";
    } else {
        br_cursor c;
        br_cursor_init(&c, canvas.ptr, canvas.len);
        int rc = compile(b, &c, &none, &res, 0);
        free(res.v);
        if (rc == 0 && br_cursor_left(&c) != 0)
            rc = bad(b, "a workflow is one step");
        if (rc != 0) {
            status = rc == BR_EVALUE ? 422 : 503;
            detail = rc == BR_EVALUE ? b->err : "Service Unavailable: out of memory";
        } else {
            status = make_members(j, b, identity, public_only, parent, made, &nmade, &detail);
        }
    }
    if (status == 0)
        status = write_members(j, made, nmade, out, &detail);
    if (status != 0) {
        snprintf(err, err_len, "%s", detail);
        for (uint32_t i = nmade; i-- > 0;)
            gw__jobs_unmake(j, made[i]);
    }
    free(made);
    if (b)
        fbuild_free(b);
    return status;
}

static void post_workflow(gw_req *req, void *data)
{
    gw_jobs *j = data;
    if (j->closing) {
        gw_req_respond_error(req, 503, true, "Service Unavailable: the gateway is shutting down");
        return;
    }
    br_buf body = {.max = br_limits_default.max_body};
    char err[GW_DETAIL_MAX];
    int rc = req->body_len ? gw_json_to_msgpack(req->body, req->body_len, &body, err, sizeof(err))
                           : BR_EVALUE;
    if (rc == BR_EVALUE && req->body_len) {
        gw_req_respond_json_invalid(req, err);
        br_buf_free(&body);
        return;
    }
    if (rc != 0) {
        gw_req_respond_detail(req, rc == BR_EVALUE ? 422 : 413,
                              rc == BR_EVALUE ? "A workflow is a JSON object (a step)"
                                              : "Request body too large or too deeply nested");
        br_buf_free(&body);
        return;
    }
    creating *cr;
    int status = flow_create(j, (br_str){(const char *)body.data, (uint32_t)body.len},
                             gw__jobs_caller(req), true, NULL, &cr, err, sizeof(err));
    if (status == 0) {
        cr->req = req;
        gw_req_on_abort(req, on_create_abort, cr);
    } else if (status == 503) {
        gw_req_respond_error(req, 503, true, err);
    } else {
        gw_req_respond_detail(req, status, err);
    }
    br_buf_free(&body);
}

/* WORKFLOW: a service's handler or task asks for a workflow.  Its members may be of
 * any task that exists (as a reply's jobs may); from a task (parent_job) the workflow
 * is linked to that job, which must be running on w, and its members carry the job's
 * owner; from a handler, the identity the message carries (as a CALL's does). */
void gw__jobs_flow_submit(void *data, gw_worker *w, const br_workflow *m)
{
    gw_jobs *j = data;
    char err[GW_DETAIL_MAX];
    if (j->closing) {
        worker_answer(j, w, m->id, 503, NULL, "Service Unavailable: the gateway is shutting down");
        return;
    }
    const gw_job *parent = NULL;
    br_str identity = m->identity;
    if (m->parent_job.len) {
        gw_job *p = gw__jobs_find(j, m->parent_job);
        if (!p || p->status != GW_JOB_RUNNING || !p->holder || p->holder->w != w) {
            snprintf(err, sizeof(err), "job %.*s is not running on this worker",
                     (int)(m->parent_job.len < GW_JOB_ID_MAX ? m->parent_job.len : GW_JOB_ID_MAX),
                     m->parent_job.ptr);
            worker_answer(j, w, m->id, 409, NULL, err);
            return;
        }
        parent = p;
        identity = p->identity;
    }
    creating *cr;
    int status = flow_create(j, m->canvas, identity, false, parent, &cr, err, sizeof(err));
    if (status != 0) {
        worker_answer(j, w, m->id, (uint16_t)status, NULL, err);
        return;
    }
    cr->worker = w;
    cr->msg_id = m->id;
    gw_list_push_back(&j->flow_asks, &cr->link);
}

/* ---------------------------------------------------------------------------------- */
/* GET and DELETE /workflows/{id}                                                      */

/* The workflow named by req's {id} if the caller may see one of its members;
 * otherwise NULL and req was answered 404. */
static gw_jobs_flow *visible_flow(gw_jobs *j, gw_req *req)
{
    gw_path_param p = gw_route_match_param(&req->match, 0);
    gw_jobs_flow *f = flow_find(j, (br_str){p.value, (uint32_t)p.value_len});
    br_str caller = gw__jobs_caller(req);
    for (uint32_t i = 0; f && i < f->size; i++)
        if (f->members[i] && f->members[i]->durable && gw__jobs_visible(f->members[i], caller))
            return f;
    gw_req_respond_detail(req, 404, "Workflow not found");
    return NULL;
}

static const char *const status_names[] = {"queued", "running",   "succeeded", "failed",
                                           "dead",   "cancelled", "waiting"};

/* The workflow's status: dead or cancelled when a member is, succeeded when all are,
 * running when one runs or some ended, else queued. */
static const char *flow_status(const gw_jobs_flow *f)
{
    unsigned count[7] = {0}, expired = 0;
    for (uint32_t i = 0; i < f->size; i++) {
        if (f->members[i])
            count[f->members[i]->status]++;
        else
            expired++;
    }
    if (count[GW_JOB_DEAD])
        return "dead";
    if (count[GW_JOB_CANCELLED])
        return "cancelled";
    if (count[GW_JOB_SUCCEEDED] + expired == f->size)
        return "succeeded";
    if (count[GW_JOB_RUNNING] || count[GW_JOB_FAILED] || count[GW_JOB_SUCCEEDED] || expired)
        return "running";
    return "queued";
}

static void get_workflow(gw_req *req, void *data)
{
    gw_jobs *j = data;
    gw_jobs_flow *f = visible_flow(j, req);
    if (!f)
        return;
    br_buf *b = &j->scratch;
    b->len = 0;
    char head[160];
    char parent[GW_JOB_ID_MAX + 24] = "";
    if (f->parent[0])
        snprintf(parent, sizeof(parent), "\"parent_job\":\"%s\",", f->parent);
    snprintf(head, sizeof(head), "{\"id\":\"%s\",\"status\":\"%s\",%s\"size\":%u,\"jobs\":[", f->id,
             flow_status(f), parent, f->size);
    int rc = br_buf_append(b, head, strlen(head));
    for (uint32_t i = 0; i < f->size && rc == 0; i++) {
        const gw_job *m = f->members[i];
        if (i)
            rc = br_buf_append(b, ",", 1);
        if (rc == 0 && !m) {
            rc = br_buf_append(b, "null", 4);
            continue;
        }
        char item[GW_JOB_ID_MAX + 48];
        snprintf(item, sizeof(item), "{\"id\":\"%s\",\"status\":\"%s\",\"task\":", m->id,
                 status_names[m->status]);
        if (rc == 0)
            rc = br_buf_append(b, item, strlen(item));
        if (rc == 0)
            rc = gw_json_append_string(b, m->task->name, strlen(m->task->name));
        if (rc == 0)
            rc = br_buf_append(b, ",\"parents\":[", 12);
        for (uint32_t k = 0; k < m->nparents && rc == 0; k++) {
            char num[16];
            int len = snprintf(num, sizeof(num), k ? ",%u" : "%u", m->parents[k]);
            rc = br_buf_append(b, num, (size_t)len);
        }
        if (rc == 0)
            rc = br_buf_append(b, "]}", 2);
    }
    if (rc == 0)
        rc = br_buf_append(b, "]}", 2);
    if (rc != 0)
        gw_req_respond_detail(req, 500, "Internal Server Error");
    else
        gw_req_respond(req, 200, NULL, 0, "application/json", b->data, b->len);
}

/* Cancels every member not finished: waiting and queued ones at once (which cancels
 * their waiting children too), running ones when their attempt ends. */
static void delete_workflow(gw_req *req, void *data)
{
    gw_jobs *j = data;
    gw_jobs_flow *f = visible_flow(j, req);
    if (!f)
        return;
    /* Counted after: cancelling one member cancels its waiting children with it. */
    unsigned cancelled = 0, cancelling = 0;
    uint32_t size = f->size;
    bool *was = calloc(size, sizeof(*was));
    if (!was) {
        gw_req_respond_error(req, 503, true, "Service Unavailable: out of memory");
        return;
    }
    for (uint32_t i = 0; i < size; i++)
        was[i] = f->members[i] && gw__jobs_finished(f->members[i]);
    for (uint32_t i = 0; i < size; i++) {
        gw_job *m = f->members[i];
        if (m && !gw__jobs_finished(m) && m->durable && gw__jobs_cancel(j, m) == 1)
            cancelling++;
    }
    for (uint32_t i = 0; i < size; i++)
        if (!was[i] && f->members[i] && f->members[i]->status == GW_JOB_CANCELLED)
            cancelled++;
    free(was);
    char id[GW_JOBS_FLOW_ID_LEN + 1];
    memcpy(id, f->id, sizeof(id));
    char body[160];
    int n =
        snprintf(body, sizeof(body), "{\"workflow_id\":\"%s\",\"cancelled\":%u,\"cancelling\":%u}",
                 id, cancelled, cancelling);
    gw_req_respond(req, 202, NULL, 0, "application/json", body, (size_t)n);
}

static const gw_jobs_route routes[] = {
    {"POST", "/workflows", post_workflow},
    {"GET", "/workflows/{id}", get_workflow},
    {"DELETE", "/workflows/{id}", delete_workflow},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

int gw__jobs_flow_routes_add(gw_jobs *j)
{
    int rc = gw__jobs_router_add(j, routes, NROUTES);
    j->flow_routes_added = rc == 0;
    return rc;
}

void gw__jobs_flow_routes_remove(gw_jobs *j)
{
    if (j->flow_routes_added)
        gw__jobs_router_remove(j, routes, NROUTES);
    j->flow_routes_added = false;
}
