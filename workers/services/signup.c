/*
 * signup.c - a background task from a handler (FastAPI's BackgroundTasks.add_task).
 *
 *   POST /signup {"email": "..."} -> 201 {"status": "created", "email": "..."}
 *
 * and, with the reply, an `email` job for that address.  The gateway writes the job
 * down before the client sees the 201, so a client that got its 201 will get its mail
 * even if every process dies right after.
 */
#include <string.h>

#include "services.h"

/* Longest address accepted (RFC 5321's path limit). */
#define SIGNUP_EMAIL_MAX 254

static void signup(br_req *req)
{
    br_value body;
    br_str addr; /* points into the request's body */
    if (br_value_parse(br_req_body(req), &body) != 0 ||
        br_value_str(br_value_get(body, "email"), &addr) != 0 || addr.len == 0 ||
        addr.len > SIGNUP_EMAIL_MAX || !memchr(addr.ptr, '@', addr.len)) {
        br_reply_error(req, 422, "body must be {\"email\": \"an address with an @\"}");
        return;
    }
    /* The email task's argument: {"to": ADDRESS}. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    br_pack_cstr(&pk, "to");
    br_pack_str(&pk, addr);
    int rc = sb.data ? br_reply_add_job(req, "email", sb.data, sb.size, NULL, 0) : BR_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        br_reply_error(req, 500, "cannot enqueue the welcome email");
        return;
    }
    msgpack_packer *out = br_reply_begin(req, 201);
    msgpack_pack_map(out, 2);
    br_pack_cstr(out, "status");
    br_pack_cstr(out, "created");
    br_pack_cstr(out, "email");
    br_pack_str(out, addr);
    br_reply_end(req);
}

static const br_route_spec routes[] = {
    {.method = "POST",
     .path = "/signup",
     .handler = signup,
     .body = BR_BODY_MSGPACK,
     .summary = "Create an account and send a welcome email in the background"},
};

const br_service_spec br_signup_service = {
    .name = "signup",
    .kind = BR_KIND_IO,
    .summary = "BackgroundTasks.add_task from a handler",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
