/* notes.c - notes kept in memory (POST /notes, GET /notes/{id}, GET /notes?limit=N) and a
 * CPU route (POST /notes/wordcount).  README.md shows the same service in FastAPI. */
#include <ctype.h>

#include <barista/worker.h>

typedef struct notes {
    int64_t n;         /* notes stored */
    br_str note[1000]; /* each as it is sent: msgpack, which clients see as JSON */
} notes;

static void create(br_req *req)
{
    notes *s = br_req_data(req);
    br_str title = br_req_field_str(req, "title"), text = br_req_field_str_or(req, "text", "");
    if (br_req_errors(req))
        return (void)br_reply_invalid(req);
    br_writer *w = br_reply_start(req, 201);
    br_w_pack(w, "{s:I, s:S, s:S}", "id", s->n + 1, "title", title, "text", text);
    br_str note = br_svc_copy(br_req_svc(req), br_writer_bytes(w)); /* kept until fini */
    if (s->n == 1000 || !note.len)
        return (void)br_reply_error(req, 507, "No room for another note");
    s->note[s->n++] = note;
    br_reply_send(req);
}

static void read_one(br_req *req)
{
    notes *s = br_req_data(req);
    int64_t id = br_req_int_or(req, BR_IN_PATH, "id", 0);
    if (id < 1 || id > s->n)
        return (void)br_reply_error(req, 404, "Note not found");
    br_reply_raw(req, 200, "application/msgpack", s->note[id - 1].ptr, s->note[id - 1].len);
}

static void list(br_req *req)
{
    notes *s = br_req_data(req);
    int64_t limit = br_req_int_or(req, BR_IN_QUERY, "limit", 10);
    br_writer *w = br_reply_start(req, 200);
    br_w_arr(w);
    for (int64_t i = 0; i < s->n && i < limit; i++)
        br_w_msgpack(w, s->note[i]);
    br_w_end(w);
    br_reply_send(req); /* or the 422 of a bad ?limit= */
}

static void wordcount(br_req *req) /* a `def` route: on a CPU worker, one at a time */
{
    br_str t = br_req_field_str(req, "text");
    int64_t words = 0;
    for (uint32_t i = 0; i < t.len; i++)
        words += !isspace((unsigned char)t.ptr[i]) && (!i || isspace((unsigned char)t.ptr[i - 1]));
    br_reply_pack(req, 200, "{s:I}", "words", words);
}

static const br_route_spec io[] = {
    {.method = "POST", .path = "/notes", .handler = create, .body = BR_BODY_MSGPACK},
    {.method = "GET", .path = "/notes/{id}", .handler = read_one},
    {.method = "GET", .path = "/notes", .handler = list}};
static const br_route_spec cpu[] = {
    {.method = "POST", .path = "/notes/wordcount", .handler = wordcount, .body = BR_BODY_MSGPACK}};
const br_service_spec notes_service = {
    .name = "notes", .kind = BR_KIND_IO, .routes = io, .nroutes = 3, .data_size = sizeof(notes)};
const br_service_spec wordcount_service = {
    .name = "wordcount", .kind = BR_KIND_CPU, .routes = cpu, .nroutes = 1};
