/*
 * barista/testing.h - testing a service the way FastAPI's TestClient tests an app.
 *
 * br_test_new runs your services in the test's own process, on a real worker loop,
 * behind the real protocol: the test client plays the gateway and its broker over an
 * in-process ZeroMQ connection.  A request goes in as HTTP would (method, path and
 * query, headers, a JSON body), is routed by your route templates, converted the way
 * the gateway converts it (JSON bodies to msgpack) and sent as a REQUEST; the REPLY
 * comes back the way a client would see it (structured replies as JSON text).  Calls
 * your handlers make (br_call, br_gather_call) are recorded and answered - by your own
 * routes when the worker serves them, by a stub you register, or 404 - and the jobs
 * replies enqueue are recorded; br_test_run_job runs a task.  No gateway, no threads
 * of the test's own: every function runs the worker's loop until its answer is there.
 *
 *     static void create_then_read(void **state)
 *     {
 *         br_test *t = br_test_new(services, BR_NELEMS(services), NULL);
 *         br_test_reply r;
 *         assert_int_equal(br_test_post(t, "/notes", "{\"title\":\"milk\"}", &r), 0);
 *         assert_int_equal(r.status, 201);
 *         assert_string_equal(r.body, "{\"id\":1,\"title\":\"milk\",\"text\":\"\"}");
 *         assert_int_equal(br_test_get(t, "/notes/2", &r), 0);
 *         assert_int_equal(r.status, 404);
 *         br_test_destroy(&t);
 *     }
 *
 * What it does not do: validate declared parameters (the gateway answers 422 before
 * dispatch; a handler under test sees whatever the test sends), authenticate, limit
 * sizes or apply CORS.  One request at a time.
 *
 * Strings in replies, calls and jobs belong to the br_test: a reply's live until the
 * next request (or job) on it, recorded calls and jobs until br_test_clear or
 * br_test_destroy.
 */
#ifndef BARISTA_TESTING_H
#define BARISTA_TESTING_H

#include <stddef.h>
#include <stdint.h>

#include "barista/worker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A request's deadline when neither the request nor its route sets one (the gateway's
 * default). */
#define BR_TEST_DEFAULT_TIMEOUT_MS 30000

typedef struct br_test br_test;

/* Starts services[0..n) (all of one kind) in a worker on this thread, runs their init
 * hooks and registers them.  `options` sets service options as flags would: "name",
 * "value" pairs, NULL-terminated (NULL for none).  Returns NULL, after logging why on
 * stderr, when the services cannot share a worker, an option is bad, an init failed
 * or memory ran out.  Caller owns the result. */
br_test *br_test_new(const br_service_spec *const *services, size_t n, const char *const *options);

/* Drains the worker (in-flight work finishes, fini hooks run), closes it and frees
 * everything; sets *self_p to NULL.  Safe on NULL and twice. */
void br_test_destroy(br_test **self_p);

/* A request, as a client would send it. */
typedef struct br_test_req {
    const char *method;         /* "GET" when NULL */
    const char *target;         /* path and query, e.g. "/notes?limit=2"; percent-encoded
                                   as on the wire (%XX and '+' in the query are decoded) */
    const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL */
    const char *body;           /* the body: JSON for a BR_BODY_MSGPACK route; may be NULL */
    size_t body_len;            /* bytes of body; 0: strlen(body) */
    const char *content_type;   /* NULL: application/json when there is a body */
    uint32_t timeout_ms;        /* the deadline; 0: the route's, else 30 s */
} br_test_req;

/* What the client got. */
typedef struct br_test_reply {
    uint16_t status;            /* the HTTP status */
    const char *content_type;   /* the media type, "" for none ("application/json" for a
                                   structured reply) */
    const char *body;           /* the body, NUL-terminated: JSON text for a structured
                                   reply ("{\"message\":\"hello\"}") */
    size_t body_len;            /* bytes of body */
    br_str msgpack;             /* a structured reply's msgpack bytes; empty otherwise */
    const char *const *headers; /* response headers: name, value, name, value, ... */
    size_t nheaders;            /* name/value pairs in headers */
} br_test_reply;

/* Sends the request and runs the worker until it answers.  The answer may be the
 * handler's, or the gateway's own for what never reaches a handler: 404 (no route),
 * 405 (another method's route), 422 (a JSON body that does not parse), 504 (no answer
 * before the deadline: the request is cancelled, as the broker would).  Returns 0 with
 * *out filled; BR_EINVAL for a bad request; BR_ECLOSED when the worker has stopped. */
int br_test_request(br_test *t, const br_test_req *rq, br_test_reply *out);

/* GET target, and POST target with a JSON body: br_test_request's shortcuts. */
int br_test_get(br_test *t, const char *target, br_test_reply *out);
int br_test_post(br_test *t, const char *target, const char *json, br_test_reply *out);

/* The value of response header `name` (any case) of a reply, or NULL. */
const char *br_test_header(const br_test_reply *r, const char *name);

/* ---------------------------------------------------------------------------------- */
/* Calls the services make.                                                            */

/* A call a handler made (br_call, br_gather_call), and how it was answered. */
typedef struct br_test_call {
    const char *method; /* "GET", ... */
    const char *path;   /* the path and query as the handler asked */
    const char *body;   /* its body (JSON text when it was msgpack), "" for none */
    uint16_t status;    /* the status it was answered with */
} br_test_call;

/* Answers calls to method and path (exact, query ignored) with status and a JSON
 * body (NULL: none), instead of routing them.  A later stub for the same route
 * replaces the earlier.  0, BR_EINVAL (JSON that does not parse) or BR_ENOMEM. */
int br_test_stub(br_test *t, const char *method, const char *path, uint16_t status,
                 const char *json);

/* The calls made since br_test_new or br_test_clear, in order. */
size_t br_test_ncalls(const br_test *t);
const br_test_call *br_test_call_at(const br_test *t, size_t i);

/* ---------------------------------------------------------------------------------- */
/* Jobs.                                                                               */

/* A job a reply enqueued (br_reply_add_job). */
typedef struct br_test_job {
    const char *task;            /* task name */
    const char *payload;         /* its argument as JSON text ("null" for none) */
    const char *idempotency_key; /* "" for none */
    uint32_t delay_ms;           /* its delay */
} br_test_job;

/* The jobs enqueued since br_test_new or br_test_clear, in order. */
size_t br_test_njobs(const br_test *t);
const br_test_job *br_test_job_at(const br_test *t, size_t i);

/* Forgets the recorded calls and jobs. */
void br_test_clear(br_test *t);

/* How a job attempt ended. */
typedef enum br_test_outcome {
    BR_TEST_JOB_OK = 0,    /* br_job_succeed */
    BR_TEST_JOB_RETRY = 1, /* br_job_fail with retry (or no end at all) */
    BR_TEST_JOB_FATAL = 2  /* br_job_fail without retry */
} br_test_outcome;

/* The end of one attempt. */
typedef struct br_test_job_result {
    br_test_outcome outcome; /* how it ended */
    const char *result;      /* the result as JSON text, "" for none */
    const char *error;       /* the failure's text, "" for none */
} br_test_job_result;

/* Runs one attempt of task with a JSON payload (NULL: null) and waits for its end
 * (at most BR_TEST_DEFAULT_TIMEOUT_MS).  Returns 0 with *out filled; BR_ENOTFOUND when
 * no hosted service runs the task; BR_EINVAL for JSON that does not parse; BR_ECLOSED
 * when the worker has stopped or the attempt did not end in time. */
int br_test_run_job(br_test *t, const char *task, const char *payload_json,
                    br_test_job_result *out);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_TESTING_H */
