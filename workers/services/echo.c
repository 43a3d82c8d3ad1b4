/*
 * echo.c - bodies: POST /echo answers with the request body and its content type.
 */
#include "services.h"

static void echo(br_req *req)
{
    br_str body = br_req_body(req);
    char *type = br_req_strdup(req, br_req_content_type(req));
    if (!type) {
        br_reply_error(req, 500, "out of memory");
        return;
    }
    br_reply_raw(req, 200, type, body.ptr, body.len);
}

static const br_route_spec routes[] = {
    {.method = "POST",
     .path = "/echo",
     .handler = echo,
     .body = BR_BODY_RAW,
     .summary = "Send the request body back",
     .responses = (const br_response_spec[]){{200, "The request body, same content type", NULL}},
     .nresponses = 1},
};

const br_service_spec br_echo_service = {
    .name = "echo",
    .kind = BR_KIND_IO,
    .summary = "bodies",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
