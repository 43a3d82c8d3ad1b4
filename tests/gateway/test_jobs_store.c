/*
 * test_jobs_store.c - the SQLite job store (a real database in a temporary directory)
 * and the retry schedule: rows written in order survive a reopen, updates leave the
 * payload and key alone, group commits report every write, deletes and tasks (with
 * their public flag) persist, reads see the writes queued before them, a file of the
 * old schema (integer ids) is migrated keeping its ids, a newer one is refused, and
 * backoff doubles, caps and jitters within its bounds.  With BARISTA_TEST_STORE=pg the
 * store's behaviour tests run again against the PostgreSQL server at
 * BARISTA_TEST_PG_URL (CTest's gateway_test_jobs_store_pg starts one through
 * tests/integration/dbservers.py), workflows' insert_many, links and set_payload
 * included, with PostgreSQL's own: one gateway owns a queue, a batch of large payloads
 * written and read back in one pipeline, and a database made before workflows gains
 * the links column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "jobs.h"
#include "jobs_store.h"

/* Rows written in the many-rows test: enough for several group commits. */
#define MANY 5000

typedef struct fixture {
    char dir[64];  /* mkdtemp directory */
    char path[96]; /* the database file in it */
    uv_loop_t loop;
} fixture;

/* The PostgreSQL database under test (BARISTA_TEST_STORE=pg), else NULL: SQLite. */
static const char *pg_url;

/* Opens the store under test: the fixture's SQLite file, or the PostgreSQL database. */
static gw_jobs_store *open_store(fixture *f, gw_jobs_sync sync)
{
    return pg_url ? gw__jobs_pg_open(&f->loop, pg_url, 60000)
                  : gw__jobs_sqlite_open(&f->loop, f->path, sync);
}

/* Runs sql (no rows) on the PostgreSQL database under test. */
static void pg_sql(const char *sql)
{
    PGconn *c = PQconnectdb(pg_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

/* Each PostgreSQL test starts from no tables, as each SQLite one from no file. */
static void pg_drop_tables(void)
{
    pg_sql("SET client_min_messages = warning; DROP TABLE IF EXISTS barista_jobs, "
           "barista_job_tasks, barista_job_schedules, barista_gateways");
}

static int setup(void **state)
{
    if (pg_url)
        pg_drop_tables();
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/barista-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/jobs.db", f->dir);
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char p[128];
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* Counts write completions and remembers their order. */
typedef struct counter {
    int done;         /* callbacks run */
    int failed;       /* of which with an error */
    uint64_t last_id; /* the id of the last callback, to check order */
    bool in_order;    /* every callback came after the one before it */
} counter;

typedef struct write_ctx {
    counter *c;  /* shared */
    uint64_t id; /* the row written */
} write_ctx;

static void on_written(void *arg, int status)
{
    write_ctx *w = arg;
    w->c->done++;
    if (status != 0)
        w->c->failed++;
    if (w->id <= w->c->last_id)
        w->c->in_order = false;
    w->c->last_id = w->id;
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

/* Closes the store and runs the loop until it is closed. */
static void close_store(fixture *f, gw_jobs_store **s)
{
    bool closed = false;
    gw__jobs_store_shutdown(*s, on_closed, &closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(closed);
    gw__jobs_store_destroy(s);
    assert_null(*s);
}

/* What load found. */
typedef struct loaded {
    size_t rows;          /* rows seen */
    size_t tasks;         /* task names seen */
    gw_job_row first;     /* copy of the row with id "1" (strings not kept) */
    char result[32];      /* its result */
    char key[32];         /* its idempotency key */
    char ids[8][40];      /* the ids of the first rows, in load order */
    uint64_t max_id;      /* largest id, read as a decimal number */
    bool saw_email;       /* task "email" was loaded */
    bool email_public;    /* with its public flag */
    bool saw_internal;    /* task "internal" was loaded */
    char identity[8][16]; /* the identities of the first rows, in load order */
} loaded;

static void copy_out(char *dst, size_t cap, br_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static void on_row(const gw_job_row *r, void *arg)
{
    loaded *l = arg;
    if (l->rows < 8) {
        copy_out(l->ids[l->rows], sizeof(l->ids[0]), r->id);
        copy_out(l->identity[l->rows], sizeof(l->identity[0]), r->identity);
    }
    l->rows++;
    char id[40];
    copy_out(id, sizeof(id), r->id);
    uint64_t n = strtoull(id, NULL, 10);
    if (n > l->max_id)
        l->max_id = n;
    /* Load leaves payload bytes in the store: only their length comes. */
    assert_int_equal(r->payload.len, 0);
    if (br_str_eq(r->id, "1")) {
        l->first = *r;
        copy_out(l->result, sizeof(l->result), r->result);
        copy_out(l->key, sizeof(l->key), r->idem_key);
    }
}

static void on_task(br_str name, bool is_public, void *arg)
{
    loaded *l = arg;
    l->tasks++;
    if (br_str_eq(name, "email")) {
        l->saw_email = true;
        l->email_public = is_public;
    }
    if (br_str_eq(name, "internal"))
        l->saw_internal = true;
}

static const br_str PAYLOAD = {"\x81\xa2to\xa3"
                               "a@b",
                               8};

/* A row whose id is the decimal text of its sequence number, as old ids are. */
static gw_job_row row(const char *id, uint8_t status)
{
    return (gw_job_row){.seq = strtoull(id, NULL, 10),
                        .id = br_str_c(id),
                        .task = br_str_c("email"),
                        .payload = PAYLOAD,
                        .payload_len = PAYLOAD.len,
                        .status = status,
                        .attempts = 0,
                        .run_at_ms = 1000,
                        .updated_ms = 1000};
}

/* What a read told. */
typedef struct read_ctx {
    int told;            /* callbacks run */
    int status;          /* the last status */
    size_t n;            /* rows */
    bool found[4];       /* per id: a row came back */
    char payload[4][32]; /* per id: its payload */
    uint32_t payload_len[4];
    char result[4][32]; /* per id: its result */
    char error[4][32];  /* per id: its error */
} read_ctx;

static void on_read(void *arg, int status, const gw_job_row *rows, size_t n)
{
    read_ctx *c = arg;
    c->told++;
    c->status = status;
    c->n = n;
    for (size_t i = 0; i < n && i < 4; i++) {
        c->found[i] = rows[i].seq != 0;
        copy_out(c->payload[i], sizeof(c->payload[i]), rows[i].payload);
        c->payload_len[i] = rows[i].payload.len;
        copy_out(c->result[i], sizeof(c->result[i]), rows[i].result);
        copy_out(c->error[i], sizeof(c->error[i]), rows[i].error);
    }
}

static void rows_survive_a_reopen_and_later_writes_win(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = open_store(f, GW_JOBS_SYNC_FULL);
    assert_non_null(s);
    counter c = {.in_order = true};
    write_ctx w[4] = {{&c, 1}, {&c, 2}, {&c, 3}, {&c, 4}};
    gw_job_row r1 = row("1", GW_JOB_QUEUED);
    r1.idem_key = br_str_c("key-1");
    assert_int_equal(gw__jobs_store_insert(s, &r1, on_written, &w[0]), 0);
    /* The same job again, finished: the later write wins, and an update leaves the
     * payload and the key as they were inserted (it does not even carry them). */
    gw_job_row r1b = r1;
    r1b.status = GW_JOB_SUCCEEDED;
    r1b.attempts = 1;
    r1b.result = (br_str){"\xc3", 1};
    r1b.payload = (br_str){0};
    r1b.idem_key = (br_str){0};
    assert_int_equal(gw__jobs_store_update(s, &r1b, on_written, &w[1]), 0);
    gw_job_row r2 = row("2", GW_JOB_RUNNING);
    assert_int_equal(gw__jobs_store_insert(s, &r2, on_written, &w[2]), 0);
    assert_int_equal(gw__jobs_store_put_task(s, br_str_c("email"), true, on_written, &w[3]), 0);
    /* Writes never run their callback before the loop does. */
    assert_int_equal(c.done, 0);
    close_store(f, &s);
    assert_int_equal(c.done, 4);
    assert_int_equal(c.failed, 0);
    assert_true(c.in_order);

    s = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    loaded l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_row, on_task, &l), 0);
    assert_int_equal(l.rows, 2);
    assert_int_equal(l.tasks, 1);
    assert_true(l.saw_email);
    assert_true(l.email_public);
    assert_int_equal(l.first.status, GW_JOB_SUCCEEDED);
    assert_int_equal(l.first.attempts, 1);
    assert_int_equal(l.first.run_at_ms, 1000);
    assert_int_equal(l.first.payload_len, PAYLOAD.len);
    assert_string_equal(l.result, "\xc3");
    assert_string_equal(l.key, "key-1");
    read_ctx rc = {0};
    uint64_t seqs[] = {1};
    assert_int_equal(gw__jobs_store_read(s, seqs, 1, GW_JOBS_READ_PAYLOAD, on_read, &rc), 0);
    close_store(f, &s); /* runs every queued callback */
    assert_int_equal(rc.told, 1);
    assert_true(rc.found[0]);
    assert_int_equal(rc.payload_len[0], PAYLOAD.len);
    assert_memory_equal(rc.payload[0], PAYLOAD.ptr, PAYLOAD.len);
}

static void reads_see_the_writes_queued_before_them(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    gw_job_row r = row("41", GW_JOB_QUEUED);
    assert_int_equal(gw__jobs_store_insert(s, &r, NULL, NULL), 0);
    r.status = GW_JOB_DEAD;
    r.result = (br_str){0};
    r.error = br_str_c("boom");
    assert_int_equal(gw__jobs_store_update(s, &r, NULL, NULL), 0);
    read_ctx payload = {0}, detail = {0};
    uint64_t seqs[] = {41, 42}; /* 42: no such job */
    assert_int_equal(gw__jobs_store_read(s, seqs, 2, GW_JOBS_READ_PAYLOAD, on_read, &payload), 0);
    assert_int_equal(gw__jobs_store_read(s, seqs, 1, GW_JOBS_READ_DETAIL, on_read, &detail), 0);
    while (payload.told == 0 || detail.told == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(payload.status, 0);
    assert_int_equal(payload.n, 2);
    assert_true(payload.found[0]);
    assert_memory_equal(payload.payload[0], PAYLOAD.ptr, PAYLOAD.len);
    assert_false(payload.found[1]); /* no such job: an empty row */
    assert_int_equal(detail.n, 1);
    assert_string_equal(detail.error[0], "boom");
    close_store(f, &s);
}

static void deletes_persist(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    counter c = {.in_order = true};
    write_ctx w[5] = {{&c, 1}, {&c, 2}, {&c, 3}, {&c, 4}, {&c, 5}};
    gw_job_row r1 = row("1", GW_JOB_QUEUED), r2 = row("2", GW_JOB_QUEUED);
    assert_int_equal(gw__jobs_store_insert(s, &r1, on_written, &w[0]), 0);
    assert_int_equal(gw__jobs_store_insert(s, &r2, on_written, &w[1]), 0);
    assert_int_equal(gw__jobs_store_delete(s, 1, on_written, &w[2]), 0);
    assert_int_equal(gw__jobs_store_put_task(s, br_str_c("internal"), false, on_written, &w[3]), 0);
    assert_int_equal(gw__jobs_store_delete_task(s, br_str_c("internal"), on_written, &w[4]), 0);
    close_store(f, &s);
    assert_int_equal(c.done, 5);

    s = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    loaded l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_row, on_task, &l), 0);
    assert_int_equal(l.rows, 1);
    assert_int_equal(l.max_id, 2);
    assert_false(l.saw_internal);
    close_store(f, &s);
}

/* Many writes queued at once: each is reported once, in order, and all are there. */
static void many_writes_group_commit_and_all_land(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = open_store(f, GW_JOBS_SYNC_FULL);
    assert_non_null(s);
    counter c = {.in_order = true};
    write_ctx *w = calloc(MANY, sizeof(*w));
    assert_non_null(w);
    for (uint64_t i = 0; i < MANY; i++) {
        w[i] = (write_ctx){&c, i + 1};
        char id[24];
        snprintf(id, sizeof(id), "%llu", (unsigned long long)(i + 1));
        gw_job_row r = row(id, GW_JOB_QUEUED);
        assert_int_equal(gw__jobs_store_insert(s, &r, on_written, &w[i]), 0);
    }
    /* Run until every callback came (the store's async wakes the loop). */
    while (c.done < MANY)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(c.failed, 0);
    assert_true(c.in_order);
    close_store(f, &s);
    free(w);

    s = open_store(f, GW_JOBS_SYNC_FULL);
    assert_non_null(s);
    loaded l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_row, on_task, &l), 0);
    assert_int_equal(l.rows, MANY);
    assert_int_equal(l.max_id, MANY);
    /* In the order they were written. */
    assert_string_equal(l.ids[0], "1");
    assert_string_equal(l.ids[7], "8");
    close_store(f, &s);
}

/* Runs SQL on the file directly, as an older gateway (or the sqlite3 shell) would. */
static void sql(fixture *f, const char *text)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db, text, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", text, err ? err : "?");
    sqlite3_close(db);
}

static void a_file_with_integer_ids_is_migrated_and_keeps_them(void **state)
{
    fixture *f = *state;
    /* The schema before issue 13, as that gateway created it. */
    sql(f, "PRAGMA journal_mode=WAL;"
           "CREATE TABLE jobs(id INTEGER PRIMARY KEY, task TEXT NOT NULL, payload BLOB,"
           " idem_key TEXT, status INTEGER NOT NULL, attempts INTEGER NOT NULL,"
           " run_at INTEGER NOT NULL, updated INTEGER NOT NULL, result BLOB, error TEXT);"
           "CREATE TABLE tasks(name TEXT PRIMARY KEY);"
           "INSERT INTO tasks VALUES('email');"
           "INSERT INTO jobs VALUES(17, 'email', x'c3', 'k', 0, 0, 1000, 1000, NULL, NULL);"
           "INSERT INTO jobs VALUES(1, 'email', x'c2', NULL, 2, 1, 1000, 1000, x'c0', NULL);");
    gw_jobs_store *s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    loaded l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_row, on_task, &l), 0);
    assert_int_equal(l.rows, 2);
    assert_string_equal(l.ids[0], "1"); /* old ids as decimal text, in their old order */
    assert_string_equal(l.ids[1], "17");
    assert_int_equal(l.first.status, GW_JOB_SUCCEEDED);
    assert_int_equal(l.first.payload_len, 1);
    assert_true(l.saw_email);
    assert_false(l.email_public); /* every old task is internal until declared again */
    read_ctx rc = {0};
    uint64_t seqs[] = {17};
    assert_int_equal(gw__jobs_store_read(s, seqs, 1, GW_JOBS_READ_PAYLOAD, on_read, &rc), 0);
    /* New rows with new ids live beside the old ones. */
    gw_job_row r = row("18", GW_JOB_QUEUED);
    r.seq = 0x01a2b3c4d5e60000ull;
    r.id = br_str_c("01a2b3c4d5e60000192a3b4c5d6e7f808182");
    assert_int_equal(gw__jobs_store_insert(s, &r, NULL, NULL), 0);
    close_store(f, &s);
    assert_true(rc.found[0]);
    assert_int_equal(rc.payload_len[0], 1);
    assert_memory_equal(rc.payload[0], "\xc3", 1);

    /* Opened again: already version 2, nothing migrates twice. */
    s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    loaded again = {0};
    assert_int_equal(gw__jobs_store_load(s, on_row, on_task, &again), 0);
    assert_int_equal(again.rows, 3);
    assert_string_equal(again.ids[2], "01a2b3c4d5e60000192a3b4c5d6e7f808182");
    close_store(f, &s);
}

static void a_version_2_file_gains_owners_and_keeps_its_jobs(void **state)
{
    fixture *f = *state;
    /* The schema of issue 13, as that gateway created it. */
    sql(f, "PRAGMA journal_mode=WAL;"
           "CREATE TABLE jobs(id INTEGER PRIMARY KEY, task TEXT NOT NULL, payload BLOB,"
           " idem_key TEXT, status INTEGER NOT NULL, attempts INTEGER NOT NULL,"
           " run_at INTEGER NOT NULL, updated INTEGER NOT NULL, result BLOB, error TEXT,"
           " public_id TEXT);"
           "CREATE TABLE tasks(name TEXT PRIMARY KEY, public INTEGER NOT NULL DEFAULT 0);"
           "INSERT INTO jobs VALUES(5, 'email', x'c3', NULL, 0, 0, 1000, 1000, NULL, NULL,"
           " '0000000000000005aaaaaaaaaaaaaaaaaaaa');"
           "PRAGMA user_version = 2;");
    gw_jobs_store *s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    loaded l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_row, on_task, &l), 0);
    assert_int_equal(l.rows, 1);
    assert_string_equal(l.ids[0], "0000000000000005aaaaaaaaaaaaaaaaaaaa");
    assert_string_equal(l.identity[0], ""); /* an old job has no owner */
    /* A new job keeps the identity it was written with. */
    gw_job_row r = row("6", GW_JOB_QUEUED);
    r.identity = br_str_c("\x81\xa3"
                          "sub\xa3"
                          "ada");
    assert_int_equal(gw__jobs_store_insert(s, &r, NULL, NULL), 0);
    close_store(f, &s);
    s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    loaded again = {0};
    assert_int_equal(gw__jobs_store_load(s, on_row, on_task, &again), 0);
    assert_int_equal(again.rows, 2);
    assert_string_equal(again.identity[1], "\x81\xa3"
                                           "sub\xa3"
                                           "ada");
    close_store(f, &s);
}

/* What load found of workflow links. */
typedef struct links_seen {
    size_t rows;       /* rows seen */
    char links[4][16]; /* per row, in load order: its links */
    uint8_t status[4]; /* and its status */
} links_seen;

static void on_links_row(const gw_job_row *r, void *arg)
{
    links_seen *l = arg;
    if (l->rows < 4) {
        copy_out(l->links[l->rows], sizeof(l->links[0]), r->links);
        l->status[l->rows] = r->status;
    }
    l->rows++;
}

static void on_any_task(br_str name, bool is_public, void *arg)
{
    (void)name, (void)is_public, (void)arg;
}

/* A workflow's members go in with one insert_many (one callback, one transaction) and
 * keep their links; an update with set_payload replaces the payload (a member given
 * its parents' results), one without leaves it. */
static void insert_many_keeps_links_and_set_payload_replaces_the_payload(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    gw_job_row rows[3] = {row("51", GW_JOB_QUEUED), row("52", GW_JOB_WAITING),
                          row("53", GW_JOB_WAITING)};
    rows[0].links = br_str_c("L0");
    rows[1].links = br_str_c("L1");
    rows[2].links = br_str_c("L2");
    counter c = {.in_order = true};
    write_ctx w = {&c, 53};
    assert_int_equal(gw__jobs_store_insert_many(s, rows, 3, on_written, &w), 0);
    while (c.done == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.failed, 0);
    gw_job_row u = row("52", GW_JOB_QUEUED);
    u.payload = br_str_c("\x05");
    u.payload_len = 1;
    u.set_payload = true;
    assert_int_equal(gw__jobs_store_update(s, &u, NULL, NULL), 0);
    gw_job_row keep = row("53", GW_JOB_WAITING);
    keep.payload = br_str_c("\x07");
    assert_int_equal(gw__jobs_store_update(s, &keep, NULL, NULL), 0);
    read_ctx got = {0};
    uint64_t seqs[] = {52, 53};
    assert_int_equal(gw__jobs_store_read(s, seqs, 2, GW_JOBS_READ_PAYLOAD, on_read, &got), 0);
    while (got.told == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(got.payload_len[0], 1);
    assert_int_equal(got.payload[0][0], 5);
    assert_int_equal(got.payload_len[1], PAYLOAD.len); /* not replaced */
    close_store(f, &s);
    s = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    links_seen l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_links_row, on_any_task, &l), 0);
    assert_int_equal(l.rows, 3);
    assert_string_equal(l.links[0], "L0");
    assert_string_equal(l.links[1], "L1");
    assert_string_equal(l.links[2], "L2");
    assert_int_equal(l.status[1], GW_JOB_QUEUED);
    assert_int_equal(l.status[2], GW_JOB_WAITING);
    close_store(f, &s);
}

/* A version-3 file (before workflows) gains the links column; its jobs have none. */
static void a_version_3_file_gains_links(void **state)
{
    fixture *f = *state;
    sql(f, "PRAGMA journal_mode=WAL;"
           "CREATE TABLE jobs(id INTEGER PRIMARY KEY, task TEXT NOT NULL, payload BLOB,"
           " idem_key TEXT, status INTEGER NOT NULL, attempts INTEGER NOT NULL,"
           " run_at INTEGER NOT NULL, updated INTEGER NOT NULL, result BLOB, error TEXT,"
           " public_id TEXT, identity BLOB);"
           "CREATE TABLE tasks(name TEXT PRIMARY KEY, public INTEGER NOT NULL DEFAULT 0);"
           "INSERT INTO jobs VALUES(5, 'email', x'c3', NULL, 0, 0, 1000, 1000, NULL, NULL,"
           " '0000000000000005aaaaaaaaaaaaaaaaaaaa', NULL);"
           "PRAGMA user_version = 3;");
    gw_jobs_store *s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    links_seen l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_links_row, on_any_task, &l), 0);
    assert_int_equal(l.rows, 1);
    assert_string_equal(l.links[0], "");
    close_store(f, &s);
}

/* A PostgreSQL database made before workflows (no links column) gains it at open; its
 * jobs have none. */
static void a_database_made_before_workflows_gains_links(void **state)
{
    fixture *f = *state;
    pg_sql("CREATE TABLE barista_jobs (id BIGINT PRIMARY KEY, public_id BYTEA, task BYTEA NOT "
           "NULL, payload BYTEA, idem_key BYTEA, status BIGINT NOT NULL, attempts BIGINT NOT "
           "NULL, run_at BIGINT NOT NULL, updated BIGINT NOT NULL, result BYTEA, error BYTEA, "
           "identity BYTEA);"
           "INSERT INTO barista_jobs VALUES (5, '0000000000000005aaaaaaaaaaaaaaaaaaaa', "
           "'email', '\\xc3', NULL, 0, 0, 1000, 1000, NULL, NULL, NULL)");
    gw_jobs_store *s = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    links_seen l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_links_row, on_any_task, &l), 0);
    assert_int_equal(l.rows, 1);
    assert_string_equal(l.links[0], "");
    close_store(f, &s);
}

static void a_file_of_a_newer_schema_is_refused(void **state)
{
    fixture *f = *state;
    sql(f, "PRAGMA user_version = 5;");
    assert_null(gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_NORMAL));
}

static void writes_after_close_are_refused(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    bool closed = false;
    gw__jobs_store_shutdown(s, on_closed, &closed);
    gw_job_row r = row("1", GW_JOB_QUEUED);
    assert_int_equal(gw__jobs_store_insert(s, &r, NULL, NULL), BR_ECLOSED);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(closed);
    gw__jobs_store_destroy(&s);
}

static void opening_an_unwritable_path_fails(void **state)
{
    fixture *f = *state;
    char bad[128];
    snprintf(bad, sizeof(bad), "%s/no/such/dir/jobs.db", f->dir);
    assert_null(gw__jobs_sqlite_open(&f->loop, bad, GW_JOBS_SYNC_NORMAL));
}

/* ---------------------------------------------------------------------------------- */
/* PostgreSQL only.                                                                    */

/* What a watch handed over. */
typedef struct adoption {
    loaded l;    /* the rows, as load reports them */
    size_t told; /* adopted() calls */
    size_t n;    /* rows they counted */
} adoption;

static void on_adopted_row(const gw_job_row *r, void *arg)
{
    on_row(r, &((adoption *)arg)->l);
}

static void on_adopted(void *arg, size_t n)
{
    adoption *a = arg;
    a->told++;
    a->n += n;
}

/* Writes r on s and runs the loop until it is durable. */
static void write_and_wait(fixture *f, gw_jobs_store *s, const gw_job_row *r, bool update)
{
    counter c = {.in_order = true};
    write_ctx w = {&c, 1};
    assert_int_equal(update ? gw__jobs_store_update(s, r, on_written, &w)
                            : gw__jobs_store_insert(s, r, on_written, &w),
                     0);
    while (c.done == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(c.failed, 0);
}

/* Two gateways share a queue: each loads only its own jobs and hands out its own keys;
 * when one's lease runs out (as if it were killed) the other adopts its jobs, writes
 * them, and after it closes a new gateway takes them at start. */
static void gateways_share_the_queue_and_adopt_a_dead_ones_jobs(void **state)
{
    fixture *f = *state;
    gw_jobs_store *a = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(a);
    gw_job_row r = row("1", GW_JOB_QUEUED);
    write_and_wait(f, a, &r, false);
    gw_jobs_store *b = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(b);
    assert_int_equal(a->seq_stride, b->seq_stride);
    assert_true(a->seq_stride > 1);
    assert_int_not_equal(a->seq_tag, b->seq_tag);
    assert_int_equal(b->seq_floor, 1);
    loaded l = {0};
    assert_int_equal(gw__jobs_store_load(b, on_row, on_task, &l), 0);
    assert_int_equal(l.rows, 0); /* a's job is a's */

    char sql[160];
    snprintf(sql, sizeof(sql),
             "UPDATE barista_gateways SET lease_until = clock_timestamp() - interval '1 second'"
             " WHERE tag = %u",
             a->seq_tag);
    pg_sql(sql);
    adoption ad = {0};
    assert_int_equal(gw__jobs_store_watch(b, on_adopted_row, on_adopted, NULL, &ad), 0);
    while (ad.told == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(ad.n, 1);
    assert_int_equal(ad.l.rows, 1);
    assert_string_equal(ad.l.ids[0], "1");
    assert_int_equal(ad.l.first.payload_len, PAYLOAD.len);
    /* a writes nothing more (its row is gone); b's handle keeps the loop alive. */
    bool closed = false;
    gw__jobs_store_shutdown(a, on_closed, &closed);
    while (!closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    gw__jobs_store_destroy(&a);

    r.status = GW_JOB_SUCCEEDED;
    r.result = (br_str){"\xc3", 1};
    write_and_wait(f, b, &r, true);
    close_store(f, &b);
    gw_jobs_store *c = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(c);
    loaded lc = {0};
    assert_int_equal(gw__jobs_store_load(c, on_row, on_task, &lc), 0);
    assert_int_equal(lc.rows, 1);
    assert_int_equal(lc.first.status, GW_JOB_SUCCEEDED);
    assert_string_equal(lc.result, "\xc3");
    close_store(f, &c);
}

static void an_unreachable_server_fails_the_open(void **state)
{
    fixture *f = *state;
    assert_null(
        gw__jobs_pg_open(&f->loop, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", 60000));
}

/* Big payloads written and read back in one batch: far more bytes than the socket
 * buffers hold in both directions, which must not wedge the pipeline. */
#define BIG_JOBS  64
#define BIG_BYTES (256 * 1024)

static void on_big_read(void *arg, int status, const gw_job_row *rows, size_t n)
{
    int *ok = arg;
    *ok = status == 0 && n == BIG_JOBS ? 1 : -1;
    for (size_t i = 0; i < n && *ok == 1; i++)
        if (rows[i].seq != i + 1 || rows[i].payload.len != BIG_BYTES ||
            (uint8_t)rows[i].payload.ptr[BIG_BYTES - 1] != (uint8_t)i)
            *ok = -1;
}

static void a_batch_of_large_payloads_round_trips(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = open_store(f, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    char *big = malloc(BIG_BYTES);
    assert_non_null(big);
    uint64_t seqs[BIG_JOBS];
    int ok = 0;
    read_ctx mid = {0};
    for (int i = 0; i < BIG_JOBS; i++) {
        memset(big, i, BIG_BYTES); /* every byte value, NUL included */
        char id[24];
        snprintf(id, sizeof(id), "%d", i + 1);
        gw_job_row r = row(id, GW_JOB_QUEUED);
        r.payload = (br_str){big, BIG_BYTES};
        assert_int_equal(gw__jobs_store_insert(s, &r, NULL, NULL), 0);
        seqs[i] = (uint64_t)i + 1;
        /* Reads between the writes: big answers while big requests are still going. */
        if (i == BIG_JOBS / 2)
            assert_int_equal(gw__jobs_store_read(s, seqs, 1, GW_JOBS_READ_PAYLOAD, on_read, &mid),
                             0);
    }
    free(big);
    assert_int_equal(gw__jobs_store_read(s, seqs, BIG_JOBS, GW_JOBS_READ_PAYLOAD, on_big_read, &ok),
                     0);
    while (ok == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(ok, 1);
    assert_int_equal(mid.told, 1);
    assert_int_equal(mid.status, 0);
    assert_true(mid.found[0]);
    close_store(f, &s);
}

/* ---------------------------------------------------------------------------------- */
/* The retry schedule.                                                                 */

static void backoff_doubles_per_attempt_within_jitter(void **state)
{
    (void)state;
    for (uint32_t attempt = 1; attempt <= 6; attempt++) {
        uint64_t full = 1000ull << (attempt - 1);
        for (uint64_t rnd = 0; rnd < 2000; rnd += 7) {
            uint64_t d = gw_jobs_backoff_ms(attempt, 1000, 1000000, rnd * 2654435761u);
            assert_true(d >= full / 2);
            assert_true(d <= full);
        }
    }
}

static void backoff_is_capped(void **state)
{
    (void)state;
    for (uint64_t rnd = 0; rnd < 1000; rnd++) {
        uint64_t d = gw_jobs_backoff_ms(40, 1000, 300000, rnd * 11400714819323198485ull);
        assert_true(d >= 150000);
        assert_true(d <= 300000);
    }
    /* Huge attempt numbers neither overflow nor loop for long. */
    assert_true(gw_jobs_backoff_ms(UINT32_MAX, 1000, 300000, 12345) <= 300000);
}

static void backoff_jitter_spreads_retries(void **state)
{
    (void)state;
    /* Jobs that failed together must not all come back at the same moment. */
    uint64_t lo = UINT64_MAX, hi = 0;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 100; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t d = gw_jobs_backoff_ms(3, 1000, 300000, x);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(hi - lo >= 1000);
}

/* The store's tests against PostgreSQL (BARISTA_TEST_STORE=pg). */
static int run_pg(void)
{
    pg_url = getenv("BARISTA_TEST_PG_URL");
    if (!pg_url || !*pg_url) {
        fprintf(stderr, "skipped: BARISTA_TEST_STORE=pg without BARISTA_TEST_PG_URL (run "
                        "through tests/integration/dbservers.py --pg)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(rows_survive_a_reopen_and_later_writes_win, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reads_see_the_writes_queued_before_them, setup, teardown),
        cmocka_unit_test_setup_teardown(deletes_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(many_writes_group_commit_and_all_land, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_after_close_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(gateways_share_the_queue_and_adopt_a_dead_ones_jobs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_unreachable_server_fails_the_open, setup, teardown),
        cmocka_unit_test_setup_teardown(a_batch_of_large_payloads_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(
            insert_many_keeps_links_and_set_payload_replaces_the_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(a_database_made_before_workflows_gains_links, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("job store on PostgreSQL", tests, NULL, NULL);
}

int main(void)
{
    const char *which = getenv("BARISTA_TEST_STORE");
    if (which && strcmp(which, "pg") == 0)
        return run_pg();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(rows_survive_a_reopen_and_later_writes_win, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reads_see_the_writes_queued_before_them, setup, teardown),
        cmocka_unit_test_setup_teardown(deletes_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_with_integer_ids_is_migrated_and_keeps_them, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_version_2_file_gains_owners_and_keeps_its_jobs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_file_of_a_newer_schema_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(
            insert_many_keeps_links_and_set_payload_replaces_the_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(a_version_3_file_gains_links, setup, teardown),
        cmocka_unit_test_setup_teardown(many_writes_group_commit_and_all_land, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_after_close_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(opening_an_unwritable_path_fails, setup, teardown),
        cmocka_unit_test(backoff_doubles_per_attempt_within_jitter),
        cmocka_unit_test(backoff_is_capped),
        cmocka_unit_test(backoff_jitter_spreads_retries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
