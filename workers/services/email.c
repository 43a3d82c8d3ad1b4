/*
 * email.c - an I/O task with a side effect you can check.
 *
 *   task email, payload {"to": ADDRESS}
 *
 * "Sending" appends one line, "<job_id> <address>\n", to the outbox file (the
 * service option --outbox / BARISTA_OUTBOX, default ./barista-outbox.txt) and fsyncs it
 * before the job succeeds; a job delivered twice shows up as two lines with the same id.
 *
 * Writing and fsync block, so they run on the thread pool, never on the loop.  Lines
 * that arrive while a write is under way wait and go out together in the next one:
 * one fsync for the whole group (the same group commit as the gateway's store).
 *
 * The outbox is process-wide state: the task API has no per-service context, and one
 * worker process has one loop, so a file-level static is that context here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "services.h"

/* Longest address written (RFC 5321's path limit). */
#define EMAIL_ADDR_MAX 254
/* Lines written and fsynced together, at most. */
#define EMAIL_BATCH_MAX 4096

/* One job's line, waiting for its write. */
typedef struct line {
    struct line *next; /* in pending or writing */
    br_jobctx *job;    /* ended once the line is durable */
    size_t len;        /* bytes in text */
    char text[];       /* "<id> <address>\n" */
} line;

/* The outbox writer (see the file comment for why it is static). */
static struct {
    line *pending, **pending_tail; /* waiting for the next write */
    size_t npending;               /* entries in pending */
    line *writing;                 /* the group the thread is writing */
    bool busy;                     /* a write is on the thread pool */
    int error;                     /* errno of the last write, 0 when it worked */
    uv_work_t work;                /* the thread-pool job */
    const char *path;              /* the outbox option (lives as long as the worker) */
} outbox;

static const char *outbox_path(void)
{
    return outbox.path ? outbox.path : BR_OUTBOX_DEFAULT;
}

/* Thread pool: appends every line of the group and fsyncs once. */
static void write_group(uv_work_t *work)
{
    (void)work;
    outbox.error = 0;
    int fd = open(outbox_path(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        outbox.error = errno;
        return;
    }
    for (line *l = outbox.writing; l && !outbox.error; l = l->next) {
        size_t off = 0;
        while (off < l->len) {
            ssize_t n = write(fd, l->text + off, l->len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                outbox.error = errno;
                break;
            }
            off += (size_t)n;
        }
    }
    if (!outbox.error && fsync(fd) != 0)
        outbox.error = errno;
    close(fd);
}

static void start_write(uv_loop_t *loop);

/* Loop: ends the group's jobs, then starts the next group. */
static void group_written(uv_work_t *work, int status)
{
    int err = status ? EIO : outbox.error;
    if (err)
        fprintf(stderr, "email: writing %s failed: %s\n", outbox_path(), strerror(err));
    line *l = outbox.writing;
    outbox.writing = NULL;
    outbox.busy = false;
    start_write(work->loop);
    while (l) {
        line *next = l->next;
        if (err)
            br_job_fail(l->job, true, "the outbox could not be written");
        else
            br_job_succeed(l->job, NULL, 0);
        free(l);
        l = next;
    }
}

static void start_write(uv_loop_t *loop)
{
    if (outbox.busy || !outbox.pending)
        return;
    /* Take up to EMAIL_BATCH_MAX lines. */
    line *head = outbox.pending, *last = head;
    size_t n = 1;
    while (last->next && n < EMAIL_BATCH_MAX) {
        last = last->next;
        n++;
    }
    outbox.pending = last->next;
    if (!outbox.pending)
        outbox.pending_tail = &outbox.pending;
    outbox.npending -= n;
    last->next = NULL;
    outbox.writing = head;
    outbox.busy = true;
    int rc = uv_queue_work(loop, &outbox.work, write_group, group_written);
    if (rc != 0) {
        fprintf(stderr, "email: uv_queue_work: %s\n", uv_strerror(rc));
        outbox.busy = false;
        outbox.writing = NULL;
        for (line *l = head, *next; l; l = next) {
            next = l->next;
            br_job_fail(l->job, true, "the outbox writer could not start");
            free(l);
        }
    }
}

static void email(br_jobctx *job)
{
    if (!outbox.path) /* set once, before the first write is queued */
        outbox.path = br_svc_option(br_job_svc(job), "outbox");
    br_value p;
    br_str to; /* points into the payload */
    if (br_value_parse(br_job_payload(job), &p) != 0 ||
        br_value_str(br_value_get(p, "to"), &to) != 0 || to.len == 0 || to.len > EMAIL_ADDR_MAX) {
        br_job_fail(job, false, "payload must be {\"to\": ADDRESS}");
        return;
    }
    br_str id = br_job_id(job);
    size_t cap = id.len + to.len + 2;
    line *l = malloc(sizeof(*l) + cap);
    if (!l) {
        br_job_fail(job, true, "out of memory");
        return;
    }
    l->next = NULL;
    l->job = job;
    memcpy(l->text, id.ptr, id.len);
    l->text[id.len] = ' ';
    /* One line per job: an address cannot break the format. */
    for (uint32_t i = 0; i < to.len; i++) {
        char c = to.ptr[i];
        l->text[id.len + 1 + i] = (c == '\n' || c == '\r' || c == ' ') ? '_' : c;
    }
    l->len = cap;
    l->text[cap - 1] = '\n';
    if (!outbox.pending_tail)
        outbox.pending_tail = &outbox.pending;
    *outbox.pending_tail = l;
    outbox.pending_tail = &l->next;
    outbox.npending++;
    start_write(br_job_loop(job));
}

static const br_task_spec tasks[] = {
    {.name = "email", .handler = email},
};

static const br_option_spec options[] = {
    {.name = "outbox",
     .env = "BARISTA_OUTBOX",
     .def = BR_OUTBOX_DEFAULT,
     .help = "the file the email task appends to"},
};

const br_service_spec br_email_service = {
    .name = "email",
    .kind = BR_KIND_IO,
    .summary = "a task with a checkable side effect (the outbox file)",
    .tasks = tasks,
    .ntasks = BR_NELEMS(tasks),
    .options = options,
    .noptions = BR_NELEMS(options),
};
