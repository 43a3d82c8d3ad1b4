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
    br_writer *payload = br_writer_new(0);
    br_w_pack(payload, "{s:S}", "to", addr);
    br_str bytes = payload ? br_writer_bytes(payload) : (br_str){"", 0};
    int rc = bytes.len ? br_reply_add_job(req, "email", bytes.ptr, bytes.len, NULL, 0) : BR_ENOMEM;
    br_writer_destroy(&payload);
    if (rc != 0) {
        br_reply_error(req, 500, "cannot enqueue the welcome email");
        return;
    }
    br_reply_pack(req, 201, "{s:s, s:S}", "status", "created", "email", addr);
}

/* The contract: the gateway answers 422 for a body without a valid address, so the
 * handler's own check above is only the defence. */
static const br_schema email_schema = {
    .type = BR_SCHEMA_STRING, .format = BR_FORMAT_EMAIL, .max_length = SIGNUP_EMAIL_MAX};
static const br_field signup_fields[] = {{"email", &email_schema, true}};
static const br_schema signup_in = {
    .type = BR_SCHEMA_OBJECT, .title = "SignupIn", BR_FIELDS(signup_fields)};
static const br_field created_fields[] = {
    {"status", &(const br_schema){.type = BR_SCHEMA_STRING}, true},
    {"email", &email_schema, true},
};
static const br_schema signup_out = {
    .type = BR_SCHEMA_OBJECT, .title = "SignupOut", BR_FIELDS(created_fields)};
static const br_response_spec responses[] = {
    {201, "Created; the welcome email is queued", &signup_out},
};

static const br_route_spec routes[] = {
    {.method = "POST",
     .path = "/signup",
     .handler = signup,
     .body = BR_BODY_MSGPACK,
     .summary = "Create an account and send a welcome email in the background",
     .body_schema = &signup_in,
     .responses = responses,
     .nresponses = BR_NELEMS(responses)},
};

const br_service_spec br_signup_service = {
    .name = "signup",
    .kind = BR_KIND_IO,
    .summary = "BackgroundTasks.add_task from a handler",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
