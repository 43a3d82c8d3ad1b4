/*
 * notes_pg.c - notes kept in PostgreSQL, and a cache and a hit counter in Redis: two
 * I/O services on the SDK's database clients (barista/pg.h, barista/redis.h).
 *
 *   notes  POST /notes {"title", "text"?}  -> 201 the note, with its id
 *          GET /notes/{id}                 -> the note, or 404
 *          GET /notes?limit=N&after=ID     -> up to N notes with ids after ID
 *   cache  PUT /cache/{key} (any body)     -> 204; kept for --cache-ttl seconds
 *          GET /cache/{key}                -> {"key", "value"}, or 404
 *          POST /hits/{page}               -> {"page", "hits"}: this minute's count
 *
 * Each service opens its pool in init and closes it in fini.  A database that is
 * down, slow or refusing reaches the client as FastAPI would answer it: 503 with
 * Retry-After, 504, 409, 422 (br_pg_reply_error / br_redis_reply_error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <barista/pg.h>
#include <barista/redis.h>
#include <barista/worker.h>

/* ---------------------------------------------------------------------------------- */
/* notes: PostgreSQL.                                                                  */

typedef struct notes_db {
    br_pg_pool *pool; /* the connections */
    bool ready;       /* the table exists */
    bool creating;    /* CREATE TABLE is running */
} notes_db;

static const char create_sql[] = "CREATE TABLE IF NOT EXISTS notes ("
                                 "id bigserial PRIMARY KEY, title text NOT NULL, "
                                 "text text NOT NULL DEFAULT '')";

static void created(const br_pg_result *res, void *arg)
{
    notes_db *db = arg;
    db->creating = false;
    db->ready = br_pg_ok(res);
    if (!db->ready)
        fprintf(stderr, "notes: cannot create the table: %.*s\n", (int)res->detail.len,
                res->detail.ptr);
}

/* The table, made once (again after a failure) before any query needs it. */
static bool schema_ready(br_req *req, notes_db *db)
{
    if (db->ready)
        return true;
    if (!db->creating && br_pg_exec(db->pool, create_sql, NULL, 0, 0, created, db) == 0)
        db->creating = true;
    br_reply_header(req, "retry-after", "1");
    br_reply_error(req, 503, "database not ready");
    return false;
}

/* Any answer of ours: the rows as JSON objects, one or a list. */
static void reply_rows(br_req *req, const br_pg_result *res, uint16_t status, bool one)
{
    if (!br_pg_ok(res)) {
        br_pg_reply_error(req, res);
        return;
    }
    if (one && res->nrows == 0) {
        br_reply_error(req, 404, "Note not found");
        return;
    }
    br_writer *w = br_reply_start(req, status);
    if (one)
        br_pg_write_row(w, res, 0);
    else
        br_pg_write_rows(w, res);
    br_reply_send(req);
}

static void inserted(br_req *req, const br_pg_result *res, void *arg)
{
    (void)arg;
    reply_rows(req, res, 201, true);
}

static void found(br_req *req, const br_pg_result *res, void *arg)
{
    (void)arg;
    reply_rows(req, res, 200, true);
}

static void listed(br_req *req, const br_pg_result *res, void *arg)
{
    (void)arg;
    reply_rows(req, res, 200, false);
}

/* Starting a query fails only for our own mistakes or a request already gone. */
static void started(br_req *req, int rc)
{
    if (rc != 0)
        br_reply_error(req, rc == BR_ECLOSED ? 504 : 500, br_strerror(rc));
}

static void create_note(br_req *req)
{
    notes_db *db = br_req_data(req);
    br_str title = br_req_field_str(req, "title"), text = br_req_field_str_or(req, "text", "");
    if (br_req_errors(req)) {
        br_reply_invalid(req);
        return;
    }
    if (!schema_ready(req, db))
        return;
    br_pg_value p[] = {br_pg_text(title), br_pg_text(text)};
    started(req, br_pg_query(req, db->pool,
                             "INSERT INTO notes (title, text) VALUES ($1, $2) "
                             "RETURNING id, title, text",
                             p, 2, inserted, NULL));
}

static void read_note(br_req *req)
{
    notes_db *db = br_req_data(req);
    int64_t id = br_req_int_or(req, BR_IN_PATH, "id", 0);
    if (br_req_errors(req)) {
        br_reply_invalid(req);
        return;
    }
    if (!schema_ready(req, db))
        return;
    br_pg_value p[] = {br_pg_int(id)};
    started(req, br_pg_query(req, db->pool, "SELECT id, title, text FROM notes WHERE id = $1", p, 1,
                             found, NULL));
}

static void list_notes(br_req *req)
{
    notes_db *db = br_req_data(req);
    int64_t limit = br_req_int_or(req, BR_IN_QUERY, "limit", 10);
    int64_t after = br_req_int_or(req, BR_IN_QUERY, "after", 0);
    if (br_req_errors(req)) {
        br_reply_invalid(req);
        return;
    }
    if (!schema_ready(req, db))
        return;
    br_pg_value p[] = {br_pg_int(after), br_pg_int(limit)};
    started(req, br_pg_query(req, db->pool,
                             "SELECT id, title, text FROM notes WHERE id > $1 ORDER BY id "
                             "LIMIT $2",
                             p, 2, listed, NULL));
}

static int notes_init(br_svc *svc)
{
    int64_t size = 0;
    br_svc_option_int(svc, "db-pool-size", &size);
    br_pg_options o = {.conninfo = br_svc_option(svc, "database-url"), .size = (uint32_t)size};
    notes_db *db = br_svc_alloc(svc, sizeof(*db));
    char why[256];
    if (!db)
        return br_svc_fail(svc, "out of memory");
    if (br_pg_pool_new(br_svc_loop(svc), &o, &db->pool, why, sizeof(why)) != 0)
        return br_svc_fail(svc, "%s", why);
    br_svc_set_data(svc, db);
    if (br_pg_exec(db->pool, create_sql, NULL, 0, 0, created, db) == 0)
        db->creating = true;
    return 0;
}

static void notes_fini(br_svc *svc)
{
    notes_db *db = br_svc_data(svc);
    br_pg_pool_destroy(&db->pool);
}

static const br_param_spec id_param[] = {
    {.name = "id", .in = BR_IN_PATH, .type = BR_TYPE_INT, .required = true, .summary = "note id"},
};
static const br_param_spec list_params[] = {
    {.name = "limit",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = 1000,
     .summary = "most notes returned (10)"},
    {.name = "after", .in = BR_IN_QUERY, .type = BR_TYPE_INT, .summary = "ids after this one"},
};
static const br_route_spec notes_routes[] = {
    {.method = "POST",
     .path = "/notes",
     .handler = create_note,
     .body = BR_BODY_MSGPACK,
     .summary = "Create a note"},
    {.method = "GET",
     .path = "/notes/{id}",
     .handler = read_note,
     .summary = "Read a note",
     .params = id_param,
     .nparams = 1},
    {.method = "GET",
     .path = "/notes",
     .handler = list_notes,
     .summary = "List notes",
     .params = list_params,
     .nparams = 2},
};
static const br_option_spec notes_options[] = {
    {.name = "database-url",
     .env = "DATABASE_URL",
     .def = "",
     .help = "PostgreSQL conninfo or URI (\"\": libpq's PG* variables)"},
    {.name = "db-pool-size",
     .env = "DB_POOL_SIZE",
     .def = "8",
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = 1000,
     .help = "PostgreSQL connections at most"},
};
const br_service_spec notes_pg_service = {
    .name = "notes",
    .kind = BR_KIND_IO,
    .summary = "notes in PostgreSQL",
    .routes = notes_routes,
    .nroutes = BR_NELEMS(notes_routes),
    .options = notes_options,
    .noptions = BR_NELEMS(notes_options),
    .init = notes_init,
    .fini = notes_fini,
};

/* ---------------------------------------------------------------------------------- */
/* cache: Redis.                                                                       */

typedef struct cache {
    br_redis_pool *pool; /* the connections */
    char ttl[24];        /* --cache-ttl, as SET's EX argument */
} cache;

static void stored(br_req *req, const br_redis_result *res, void *arg)
{
    (void)arg;
    if (!br_redis_ok(res))
        br_redis_reply_error(req, res);
    else
        br_reply_status(req, 204);
}

static void fetched(br_req *req, const br_redis_result *res, void *arg)
{
    br_str *key = arg;
    if (!br_redis_ok(res)) {
        br_redis_reply_error(req, res);
        return;
    }
    if (res->reply->type != BR_REDIS_STRING) {
        br_reply_error(req, 404, "Not cached");
        return;
    }
    br_reply_pack(req, 200, "{s:S, s:S}", "key", *key, "value", res->reply->str);
}

/* "cache:" + key, in the request's arena. */
static br_str cache_key(br_req *req, br_str key)
{
    char *k = br_req_alloc(req, key.len + 6);
    if (!k)
        return br_str_c("");
    memcpy(k, "cache:", 6);
    memcpy(k + 6, key.ptr, key.len);
    return (br_str){k, key.len + 6};
}

static void put_cache(br_req *req)
{
    cache *c = br_req_data(req);
    br_str key;
    br_req_param(req, "key", &key);
    br_str argv[] = {br_str_c("SET"), cache_key(req, key), br_req_body(req), br_str_c("EX"),
                     br_str_c(c->ttl)};
    started(req, br_redis_command(req, c->pool, argv, 5, stored, NULL));
}

static void get_cache(br_req *req)
{
    cache *c = br_req_data(req);
    br_str *key = br_req_alloc(req, sizeof(*key));
    if (!key) {
        br_reply_error(req, 500, "out of memory");
        return;
    }
    br_req_param(req, "key", key);
    br_str argv[] = {br_str_c("GET"), cache_key(req, *key)};
    started(req, br_redis_command(req, c->pool, argv, 2, fetched, key));
}

static void counted(br_req *req, const br_redis_result *r, size_t n, void *arg)
{
    br_str *page = arg;
    /* MULTI, INCR, EXPIRE, EXEC: the count is EXEC's first element. */
    if (n != 4 || !br_redis_ok(&r[3]) || r[3].reply->type != BR_REDIS_ARRAY || r[3].reply->n < 1) {
        for (size_t i = 0; i < n; i++)
            if (!br_redis_ok(&r[i])) {
                br_redis_reply_error(req, &r[i]);
                return;
            }
        br_reply_error(req, 500, "unexpected answer from redis");
        return;
    }
    br_reply_pack(req, 200, "{s:S, s:I}", "page", *page, "hits", r[3].reply->elems[0].integer);
}

static void hit(br_req *req)
{
    cache *c = br_req_data(req);
    br_str *page = br_req_alloc(req, sizeof(*page));
    char *key = br_req_alloc(req, 300);
    if (!page || !key) {
        br_reply_error(req, 500, "out of memory");
        return;
    }
    br_req_param(req, "page", page);
    /* One counter per page and minute, gone a minute after its minute ended. */
    snprintf(key, 300, "hits:%.*s:%lld", (int)(page->len > 200 ? 200 : page->len), page->ptr,
             (long long)(time(NULL) / 60));
    br_str multi[] = {br_str_c("MULTI")}, exec[] = {br_str_c("EXEC")};
    br_str incr[] = {br_str_c("INCR"), br_str_c(key)};
    br_str expire[] = {br_str_c("EXPIRE"), br_str_c(key), br_str_c("120")};
    br_redis_cmd cmds[] = {{multi, 1}, {incr, 2}, {expire, 3}, {exec, 1}};
    started(req, br_redis_pipeline(req, c->pool, cmds, 4, counted, page));
}

static int cache_init(br_svc *svc)
{
    int64_t port = 0, size = 0, ttl = 0;
    br_svc_option_int(svc, "redis-port", &port);
    br_svc_option_int(svc, "redis-pool-size", &size);
    br_svc_option_int(svc, "cache-ttl", &ttl);
    br_redis_options o = {.host = br_svc_option(svc, "redis-host"),
                          .port = (uint16_t)port,
                          .password = br_svc_option(svc, "redis-password"),
                          .size = (uint32_t)size};
    cache *c = br_svc_alloc(svc, sizeof(*c));
    char why[256];
    if (!c)
        return br_svc_fail(svc, "out of memory");
    snprintf(c->ttl, sizeof(c->ttl), "%lld", (long long)ttl);
    if (br_redis_pool_new(br_svc_loop(svc), &o, &c->pool, why, sizeof(why)) != 0)
        return br_svc_fail(svc, "%s", why);
    br_svc_set_data(svc, c);
    return 0;
}

static void cache_fini(br_svc *svc)
{
    cache *c = br_svc_data(svc);
    br_redis_pool_destroy(&c->pool);
}

static const br_param_spec key_param[] = {
    {.name = "key",
     .in = BR_IN_PATH,
     .type = BR_TYPE_STR,
     .required = true,
     .has_max = true,
     .max = 512,
     .summary = "cache key"},
};
static const br_param_spec page_param[] = {
    {.name = "page",
     .in = BR_IN_PATH,
     .type = BR_TYPE_STR,
     .required = true,
     .has_max = true,
     .max = 200,
     .summary = "page name"},
};
static const br_route_spec cache_routes[] = {
    {.method = "PUT",
     .path = "/cache/{key}",
     .handler = put_cache,
     .body = BR_BODY_RAW,
     .summary = "Cache a value",
     .params = key_param,
     .nparams = 1},
    {.method = "GET",
     .path = "/cache/{key}",
     .handler = get_cache,
     .summary = "Read a value",
     .params = key_param,
     .nparams = 1},
    {.method = "POST",
     .path = "/hits/{page}",
     .handler = hit,
     .summary = "Count a hit this minute",
     .params = page_param,
     .nparams = 1},
};
static const br_option_spec cache_options[] = {
    {.name = "redis-host",
     .env = "REDIS_HOST",
     .def = "127.0.0.1",
     .help = "Redis host name, address or socket path"},
    {.name = "redis-port",
     .env = "REDIS_PORT",
     .def = "6379",
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = 65535,
     .help = "Redis port"},
    {.name = "redis-password", .env = "REDIS_PASSWORD", .help = "Redis AUTH password"},
    {.name = "redis-pool-size",
     .env = "REDIS_POOL_SIZE",
     .def = "2",
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = 64,
     .help = "Redis connections"},
    {.name = "cache-ttl",
     .env = "CACHE_TTL",
     .def = "300",
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 1,
     .help = "seconds a cached value lives"},
};
const br_service_spec cache_service = {
    .name = "cache",
    .kind = BR_KIND_IO,
    .summary = "a cache and a hit counter in Redis",
    .routes = cache_routes,
    .nroutes = BR_NELEMS(cache_routes),
    .options = cache_options,
    .noptions = BR_NELEMS(cache_options),
    .init = cache_init,
    .fini = cache_fini,
};
