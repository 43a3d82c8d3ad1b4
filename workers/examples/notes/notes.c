/* notes.c - notes kept in memory (POST /notes, GET /notes/{id}, GET /notes?limit=N), a
 * workflow asked for by a handler (POST /notes/{id}/share: a group of email jobs) and a
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

static void shared(const br_workflow_result *res, void *arg) /* the gateway's answer */
{
    if (res->status == 202)
        br_reply_pack(arg, 202, "{s:S}", "workflow_id", res->workflow_id);
    else
        br_reply_errorf(arg, res->status, "%.*s", (int)res->detail.len, res->detail.ptr);
}

static void share(br_req *req) /* a group of `email` jobs, one per address, as one workflow */
{
    notes *s = br_req_data(req);
    int64_t id = br_req_int_or(req, BR_IN_PATH, "id", 0);
    br_value to;
    if (id < 1 || id > s->n)
        return (void)br_reply_error(req, 404, "Note not found");
    if (br_value_parse(br_req_body(req), &to) != 0)
        return (void)br_reply_error(req, 422, "A body {\"to\": [addresses]}");
    to = br_value_get(to, "to");
    br_writer *w = br_writer_new(0);
    br_w_pack(w, "{s:[", "group");
    for (uint32_t i = 0; i < br_value_len(to); i++) {
        br_str addr;
        if (br_value_str(br_value_index(to, i), &addr) == 0)
            br_w_pack(w, "{s:s, s:{s:S}}", "task", "email", "args", "to", addr);
    }
    br_w_pack(w, "]}");
    br_str canvas = br_writer_bytes(w); /* copied by the call */
    if (br_req_workflow_submit(req, canvas.ptr, canvas.len, shared, req) != 0)
        br_reply_error(req, 503, "Cannot ask for the workflow");
    br_writer_destroy(&w);
}

static void wordcount(br_req *req) /* a `def` route: on a CPU worker, one at a time */
{
    br_str t = br_req_field_str(req, "text");
    int64_t words = 0;
    for (uint32_t i = 0; i < t.len; i++)
        words += !isspace((unsigned char)t.ptr[i]) && (!i || isspace((unsigned char)t.ptr[i - 1]));
    br_reply_pack(req, 200, "{s:I}", "words", words);
}

/* The contracts, declared once: the gateway validates against them (422), converts
 * and fills in defaults before a handler runs, and /openapi.json and /docs show them. */
static const br_schema text_s = {.type = BR_SCHEMA_STRING, .max_length = 10000};
static const br_field note_in_fields[] = {
    {"title", &(const br_schema){.type = BR_SCHEMA_STRING, .min_length = 1, .max_length = 200},
     true},
    {"text", &(const br_schema){.type = BR_SCHEMA_STRING, .max_length = 10000, .def = ""}, false}};
static const br_schema note_in = {
    .type = BR_SCHEMA_OBJECT, .title = "NoteIn", BR_FIELDS(note_in_fields)};
static const br_field note_fields[] = {{"id", &(const br_schema){.type = BR_SCHEMA_INTEGER}, true},
                                       {"title", &text_s, true},
                                       {"text", &text_s, true}};
static const br_schema note = {.type = BR_SCHEMA_OBJECT, .title = "Note", BR_FIELDS(note_fields)};
static const br_schema note_list = {.type = BR_SCHEMA_ARRAY, .items = &note};
static const br_param_spec id_param[] = {
    {.name = "id", .in = BR_IN_PATH, .type = BR_TYPE_INT, .required = true}};
static const br_param_spec limit_param[] = {
    {.name = "limit",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .schema = &(const br_schema){.type = BR_SCHEMA_INTEGER, BR_GE(0), BR_LE(1000), .def = "10"}}};
static const br_field wc_fields[] = {{"text", &text_s, true}};
static const br_field words_fields[] = {
    {"words", &(const br_schema){.type = BR_SCHEMA_INTEGER}, true}};

static const br_route_spec io[] = {
    {.method = "POST",
     .path = "/notes",
     .handler = create,
     .body = BR_BODY_MSGPACK,
     .summary = "Create a note",
     .body_schema = &note_in,
     .responses = (const br_response_spec[]){{201, "The new note", &note},
                                             {507, "No room", &br_schema_http_error}},
     .nresponses = 2},
    {.method = "GET",
     .path = "/notes/{id}",
     .handler = read_one,
     .summary = "Read a note",
     .params = id_param,
     .nparams = 1,
     .responses = (const br_response_spec[]){{200, "The note", &note},
                                             {404, "No such note", &br_schema_http_error}},
     .nresponses = 2},
    {.method = "GET",
     .path = "/notes",
     .handler = list,
     .summary = "The first notes",
     .params = limit_param,
     .nparams = 1,
     .responses = (const br_response_spec[]){{200, "Notes, oldest first", &note_list}},
     .nresponses = 1},
    {.method = "POST",
     .path = "/notes/{id}/share",
     .handler = share,
     .body = BR_BODY_MSGPACK,
     .summary = "Email a note to addresses: a workflow (a group of email jobs)",
     .params = id_param,
     .nparams = 1}};
static const br_route_spec cpu[] = {
    {.method = "POST",
     .path = "/notes/wordcount",
     .handler = wordcount,
     .body = BR_BODY_MSGPACK,
     .summary = "Count the words of a text",
     .body_schema =
         &(const br_schema){.type = BR_SCHEMA_OBJECT, .title = "Text", BR_FIELDS(wc_fields)},
     .responses = (const br_response_spec[]){{200, "The count",
                                              &(const br_schema){.type = BR_SCHEMA_OBJECT,
                                                                 .title = "WordCount",
                                                                 BR_FIELDS(words_fields)}}},
     .nresponses = 1}};
const br_service_spec notes_service = {
    .name = "notes", .kind = BR_KIND_IO, .routes = io, .nroutes = 4, .data_size = sizeof(notes)};
const br_service_spec wordcount_service = {
    .name = "wordcount", .kind = BR_KIND_CPU, .routes = cpu, .nroutes = 1};
