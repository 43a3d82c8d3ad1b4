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
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object body;
    const msgpack_object *email = NULL;
    if (br_payload_unpack(br_req_body(req), &zone, &body) == 0)
        email = br_payload_get(&body, "email");
    if (!email || email->type != MSGPACK_OBJECT_STR || email->via.str.size == 0 ||
        email->via.str.size > SIGNUP_EMAIL_MAX ||
        !memchr(email->via.str.ptr, '@', email->via.str.size)) {
        msgpack_zone_destroy(&zone);
        br_reply_error(req, 422, "body must be {\"email\": \"an address with an @\"}");
        return;
    }
    br_str addr = {email->via.str.ptr, email->via.str.size};
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
        msgpack_zone_destroy(&zone);
        br_reply_error(req, 500, "cannot enqueue the welcome email");
        return;
    }
    msgpack_packer *out = br_reply_begin(req, 201);
    msgpack_pack_map(out, 2);
    br_pack_cstr(out, "status");
    br_pack_cstr(out, "created");
    br_pack_cstr(out, "email");
    br_pack_str(out, addr);
    msgpack_zone_destroy(&zone); /* addr points into the body, not the zone */
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
