/*
 * gen_corpus.c - writes the seed corpus for fuzz_decode into the directory given:
 * the typical and the empty sample of every message type, and every hostile input.
 * Run it again when the wire format changes, and commit the result.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "samples.h"

static int write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return -1;
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "gen_corpus: fopen %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t put = fwrite(data, 1, len, f);
    return fclose(f) == 0 && put == len ? 0 : -1;
}

/* "request body bin32" -> "hostile-request-body-bin32" */
static void file_name(char *out, size_t size, const char *prefix, const char *what)
{
    snprintf(out, size, "%s-%s", prefix, what);
    for (char *p = out; *p; p++) {
        if (*p == ' ')
            *p = '-';
        else if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    static const char *const shape_names[] = {"typical", "empty"};
    char name[128];
    for (int shape = SAMPLE_TYPICAL; shape <= SAMPLE_EMPTY; shape++) {
        for (unsigned type = 1; type <= BR_MSG_STREAM_LAST; type++) {
            if (!br_msg_type_known(type))
                continue;
            br_msg m;
            br_buf buf = {0};
            sample_msg(type, (sample_shape)shape, &m);
            if (type == BR_MSG_HEARTBEAT && shape == SAMPLE_EMPTY)
                continue; /* a HEARTBEAT has no fields: both shapes are the same bytes */
            file_name(name, sizeof name, shape_names[shape], br_msg_type_name(type));
            if (br_msg_encode(&m, &buf) < 0 || write_file(argv[1], name, buf.data, buf.len) < 0)
                return 1;
            br_buf_free(&buf);
        }
    }
    const sample_hostile *h;
    for (size_t i = 0; (h = sample_hostile_get(i)) != NULL; i++) {
        file_name(name, sizeof name, "hostile", h->what);
        if (write_file(argv[1], name, h->bytes, h->len) < 0)
            return 1;
    }
    return 0;
}
