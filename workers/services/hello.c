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
    msgpack_packer *pk = br_reply_begin(req, 200);
    msgpack_pack_map(pk, 1);
    br_pack_cstr(pk, "message");
    if (named) {
        msgpack_pack_str(pk, 6 + name.len);
        msgpack_pack_str_body(pk, "hello ", 6);
        msgpack_pack_str_body(pk, name.ptr, name.len);
    } else {
        br_pack_cstr(pk, "hello");
    }
    br_reply_end(req);
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
