/*
 * replay.c - feeds every file of the given corpus directories (or the given files) to
 * LLVMFuzzerTestOneInput, so that CTest re-runs the saved corpus on every build, with
 * any compiler.  Exits non-zero when an argument cannot be read or holds no inputs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* The largest input replayed: a protocol message is at most 16 MiB. */
#define REPLAY_MAX_INPUT (16u * 1024u * 1024u + 1u)

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: fopen %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint8_t *data = malloc(REPLAY_MAX_INPUT);
    size_t n = data ? fread(data, 1, REPLAY_MAX_INPUT, f) : 0;
    int failed = !data || ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "replay: reading %s failed\n", path);
        free(data);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    return 0;
}

/* Replays every regular file directly inside dir; returns how many, or -1. */
static long replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: opendir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    long count = 0;
    char path[4096];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        struct stat st;
        int len = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (len < 0 || (size_t)len >= sizeof path || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (replay_file(path) < 0) {
            count = -1;
            break;
        }
        count++;
    }
    closedir(d);
    return count;
}

int main(int argc, char **argv)
{
    long total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: stat %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        long n = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]) == 0;
        if (n < 0)
            return 1;
        total += n;
    }
    printf("replay: %ld inputs, no failures\n", total);
    return total > 0 ? 0 : 1;
}
