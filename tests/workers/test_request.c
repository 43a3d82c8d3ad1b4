/*
 * test_request.c - what a handler sees of a request: it outlives the frame it was
 * decoded from, lookups by name, integer query parsing, the arena, and the REPLY each
 * br_reply_* call produces.  Requests here are marked as running on the compute
 * thread, so that replying records the reply instead of sending it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "request.h"

static void noop(br_req *req)
{
    (void)req;
}

static const br_route_spec route = {.method = "GET", .path = "/t/{id}", .handler = noop};

/* Encodes a REQUEST, decodes it the way the worker does, and makes a br_req from it
 * on a frame that is wiped right after, as ZeroMQ would reuse it. */
static br_req *make_request(void)
{
    br_pair params[] = {{br_str_c("id"), br_str_c("42")}};
    br_pair query[] = {{br_str_c("n"), br_str_c("-17")},
                       {br_str_c("big"), br_str_c("99999999999999999999")},
                       {br_str_c("plus"), br_str_c("+5")},
                       {br_str_c("n"), br_str_c("2")}};
    br_pair headers[] = {{br_str_c("x-token"), br_str_c("secret")}};
    br_msg m = {.type = BR_MSG_REQUEST};
    m.u.request = (br_request){.id = 77,
                               .service = br_str_c("t"),
                               .route = br_str_c("/t/{id}"),
                               .method = br_str_c("GET"),
                               .path = br_str_c("/t/42"),
                               .params = params,
                               .nparams = 1,
                               .query = query,
                               .nquery = 4,
                               .headers = headers,
                               .nheaders = 1,
                               .content_type = br_str_c("text/plain"),
                               .body = br_str_c("hi"),
                               .deadline_ms = 60000};
    br_buf buf = {0};
    assert_int_equal(br_msg_encode(&m, &buf), 0);
    br_decoder *dec = br_decoder_new(NULL);
    br_msg d;
    assert_int_equal(br_decoder_decode(dec, buf.data, buf.len, &d), 0);
    br_req *req = br__req_new(NULL, &route, &d.u.request, buf.data, buf.len);
    assert_non_null(req);
    memset(buf.data, 0, buf.len);
    br_buf_free(&buf);
    br_decoder_destroy(&dec);
    req->on_thread = true;
    return req;
}

static void a_request_outlives_its_frame_and_finds_values_by_name(void **state)
{
    (void)state;
    br_req *req = make_request();
    br_str s;
    assert_int_equal(br_req_id(req), 77);
    assert_true(br_str_eq(br_req_path(req), "/t/42"));
    assert_true(br_str_eq(br_req_route(req), "/t/{id}"));
    assert_true(br_str_eq(br_req_method(req), "GET"));
    assert_int_equal(br_req_param(req, "id", &s), 0);
    assert_true(br_str_eq(s, "42"));
    assert_int_equal(br_req_param(req, "nope", &s), BR_ENOTFOUND);
    assert_int_equal(s.len, 0);
    assert_int_equal(br_req_header(req, "X-Token", &s), 0);
    assert_true(br_str_eq(s, "secret"));
    assert_true(br_str_eq(br_req_body(req), "hi"));
    assert_true(br_str_eq(br_req_content_type(req), "text/plain"));
    uint32_t left = br_req_remaining_ms(req);
    assert_true(left > 0 && left <= 60000);
    assert_false(br_req_cancelled(req));
    br__req_release(req);
}

static void typed_getters_read_path_query_and_header_values(void **state)
{
    (void)state;
    br_req *req = make_request();
    int64_t i = 0;
    double d = 0;
    bool b = false;
    br_str s;
    assert_int_equal(br_req_int(req, BR_IN_PATH, "id", &i), 0);
    assert_int_equal(i, 42);
    assert_int_equal(br_req_float(req, BR_IN_QUERY, "n", &d), 0);
    assert_true(d == -17.0);
    assert_int_equal(br_req_bool(req, BR_IN_HEADER, "x-token", &b), BR_EVALUE);
    assert_int_equal(br_req_str(req, BR_IN_HEADER, "X-TOKEN", &s), 0);
    assert_true(br_str_eq(s, "secret"));
    assert_int_equal(br_req_int(req, BR_IN_HEADER, "x-none", &i), BR_ENOTFOUND);
    /* With a default: absent is no error, unparsable is one (recorded for 422). */
    assert_int_equal(br_req_int_or(req, BR_IN_QUERY, "limit", 10), 10);
    assert_int_equal(br_req_errors(req), 0);
    assert_int_equal(br_req_int_or(req, BR_IN_QUERY, "big", 7), 7);
    assert_true(br_req_bool_or(req, BR_IN_PATH, "id", true));
    assert_int_equal(br_req_errors(req), 2);
    br__req_release(req);
}

static void validation_errors_reply_422_with_fastapi_detail_list(void **state)
{
    (void)state;
    br_req *req = make_request();
    assert_int_equal(br_req_int_or(req, BR_IN_QUERY, "big", 1), 1);
    assert_int_equal(br_req_invalid(req, "body", "items.0.qty", "Field required", "missing", NULL),
                     0);
    assert_int_equal(br_reply_invalid(req), 0);
    br_reply r;
    br__req_reply_msg(req, &r);
    assert_int_equal(r.status, 422);

    br_writer *want = br_writer_new(0);
    br_w_obj(want);
    br_w_key(want, "detail");
    br_w_arr(want);
    br_w_obj(want);
    br_w_key_cstr(want, "type", "int_parsing");
    br_w_key(want, "loc");
    br_w_arr(want);
    br_w_cstr(want, "query");
    br_w_cstr(want, "big");
    br_w_end(want);
    br_w_key_cstr(want, "msg",
                  "Input should be a valid integer, unable to parse string as an integer");
    br_w_key_cstr(want, "input", "99999999999999999999");
    br_w_end(want);
    br_w_obj(want);
    br_w_key_cstr(want, "type", "missing");
    br_w_key(want, "loc");
    br_w_arr(want);
    br_w_cstr(want, "body");
    br_w_cstr(want, "items");
    br_w_int(want, 0);
    br_w_cstr(want, "qty");
    br_w_end(want);
    br_w_key_cstr(want, "msg", "Field required");
    br_w_key_null(want, "input");
    br_w_end(want);
    br_w_end(want);
    br_w_end(want);
    br_str bytes = br_writer_bytes(want);
    assert_int_equal(r.body.len, bytes.len);
    assert_memory_equal(r.body.ptr, bytes.ptr, bytes.len);
    br_writer_destroy(&want);
    br__req_release(req);
}

static void query_integers_are_parsed_strictly(void **state)
{
    (void)state;
    br_req *req = make_request();
    int64_t v = 0;
    assert_int_equal(br_req_query_int(req, "n", &v), 0);
    assert_int_equal(v, -17); /* the first of two */
    assert_int_equal(br_req_query_int(req, "big", &v), BR_EVALUE);
    /* "+5" passed the gateway's validation (pydantic's lax int): the worker agrees. */
    assert_int_equal(br_req_query_int(req, "plus", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(br_req_query_int(req, "absent", &v), BR_ENOTFOUND);
    br__req_release(req);
}

static void a_structured_reply_carries_msgpack_and_headers(void **state)
{
    (void)state;
    br_req *req = make_request();
    char *copy = br_req_strdup(req, br_str_c("kept"));
    assert_string_equal(copy, "kept");
    assert_int_equal(br_reply_header(req, "X-Cache", "miss"), 0);
    assert_int_equal(br_reply_header(req, "Content-Type", "text/html"), BR_EINVAL);
    assert_int_equal(br_reply_header(req, "connection", "close"), BR_EINVAL);
    assert_int_equal(br_reply_header(req, "Proxy-Authenticate", "x"), BR_EINVAL);
    br_writer *w = br_reply_start(req, 201);
    assert_non_null(w);
    br_w_obj(w);
    br_w_key_bool(w, "ok", true);
    br_w_end(w);
    assert_int_equal(br_reply_send(req), 0);
    /* The request has ended: a second reply is a programmer error. */
    assert_int_equal(br_reply_status(req, 200), BR_EINVAL);
    assert_null(br_reply_start(req, 200));

    br_reply r;
    br__req_reply_msg(req, &r);
    assert_int_equal(r.id, 77);
    assert_int_equal(r.status, 201);
    assert_true(br_str_eq(r.content_type, "application/msgpack"));
    static const unsigned char want[] = {0x81, 0xa2, 'o', 'k', 0xc3};
    assert_int_equal(r.body.len, sizeof(want));
    assert_memory_equal(r.body.ptr, want, sizeof(want));
    assert_int_equal(r.nheaders, 1);
    assert_true(br_str_eq(r.headers[0].name, "x-cache"));
    br__req_release(req);
}

static void bad_replies_become_500_and_cancelled_ones_499(void **state)
{
    (void)state;
    br_req *req = make_request();
    assert_int_equal(br_reply_raw(req, 42, "text/plain", "x", 1), BR_EINVAL);
    br_reply r;
    br__req_reply_msg(req, &r);
    assert_int_equal(r.status, 500);
    assert_int_equal(r.body.len, 0);
    br__req_release(req);

    req = make_request();
    void *big = malloc(BR_REPLY_BODY_MAX + 1);
    assert_non_null(big);
    assert_int_equal(br_reply_raw(req, 200, "application/octet-stream", big, BR_REPLY_BODY_MAX + 1),
                     BR_ELIMIT);
    free(big);
    br__req_reply_msg(req, &r);
    assert_int_equal(r.status, 500);
    br__req_release(req);

    req = make_request();
    br__req_cancel(req);
    assert_true(br_req_cancelled(req));
    assert_int_equal(br_reply_error(req, 200, "done anyway"), 0);
    br__req_reply_msg(req, &r);
    assert_int_equal(r.status, 499);
    assert_int_equal(r.body.len, 0);
    br__req_release(req);

    /* A writer left with an open object makes the reply a 500. */
    req = make_request();
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    assert_int_equal(br_reply_send(req), BR_EINVAL);
    br__req_reply_msg(req, &r);
    assert_int_equal(r.status, 500);
    br__req_release(req);

    /* A CPU handler that returns without replying gets a 500. */
    req = make_request();
    br__req_reply_msg(req, &r);
    assert_int_equal(r.status, 500);
    br__req_release(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_request_outlives_its_frame_and_finds_values_by_name),
        cmocka_unit_test(query_integers_are_parsed_strictly),
        cmocka_unit_test(typed_getters_read_path_query_and_header_values),
        cmocka_unit_test(validation_errors_reply_422_with_fastapi_detail_list),
        cmocka_unit_test(a_structured_reply_carries_msgpack_and_headers),
        cmocka_unit_test(bad_replies_become_500_and_cancelled_ones_499),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
