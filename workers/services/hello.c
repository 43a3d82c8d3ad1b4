/*
 * hello.c - the smallest service: a constant, and a path parameter.
 *
 *   GET /hello          -> {"message": "hello"}
 *   GET /hello/{name}   -> {"message": "hello NAME"}
 */
#include "services.h"

/* Both routes answer at once, from the loop: nothing here ever waits. */
static void say_hello(br_req *req)
{
    br_str name;
    bool named = br_req_param(req, "name", &name) == 0;
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    br_w_key(w, "message");
    if (named)
        br_w_strf(w, "hello %.*s", (int)name.len, name.ptr);
    else
        br_w_cstr(w, "hello");
    br_w_end(w);
    br_reply_send(req);
}

static const br_param_spec name_param[] = {
    {.name = "name",
     .in = BR_IN_PATH,
     .type = BR_TYPE_STR,
     .required = true,
     .summary = "who to greet"},
};

static const br_route_spec routes[] = {
    {.method = "GET", .path = "/hello", .handler = say_hello, .summary = "Say hello"},
    {.method = "GET",
     .path = "/hello/{name}",
     .handler = say_hello,
     .summary = "Say hello to someone",
     .params = name_param,
     .nparams = BR_NELEMS(name_param)},
};

const br_service_spec br_hello_service = {
    .name = "hello",
    .kind = BR_KIND_IO,
    .summary = "the smallest service; path parameters",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
