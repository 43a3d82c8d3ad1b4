/*
 * curve_keyset.c - the set of authorised CURVE public keys (see barista/curve.h).
 *
 * Keys are looked up once per connection handshake, so a sorted array searched with
 * bsearch is plenty; it is sorted again after each load, not after each add.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "barista/curve.h"
#include "barista/proto.h"
#include "curve_int.h"

typedef struct keyset_entry {
    uint8_t key[BR_CURVE_KEY_LEN];    /* the raw public key */
    char name[BR_CURVE_NAME_MAX + 1]; /* its name from the file, maybe "" */
} keyset_entry;

struct br_curve_keyset {
    keyset_entry *keys; /* sorted by key once `sorted` */
    size_t n;           /* entries used */
    size_t cap;         /* entries allocated (at most BR_CURVE_MAX_KEYS) */
    int sorted;         /* keys[] is in order (cleared by add) */
};

static int cmp_entry(const void *a, const void *b)
{
    return memcmp(((const keyset_entry *)a)->key, ((const keyset_entry *)b)->key, BR_CURVE_KEY_LEN);
}

br_curve_keyset *br_curve_keyset_new(void)
{
    return calloc(1, sizeof(br_curve_keyset));
}

void br_curve_keyset_destroy(br_curve_keyset **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->keys);
    free(*self_p);
    *self_p = NULL;
}

size_t br_curve_keyset_count(const br_curve_keyset *self)
{
    return self->n;
}

static const keyset_entry *find(const br_curve_keyset *self, const uint8_t raw[BR_CURVE_KEY_LEN])
{
    if (self->n == 0)
        return NULL; /* keys may be NULL, which bsearch must not see */
    if (self->sorted) {
        keyset_entry probe;
        memcpy(probe.key, raw, BR_CURVE_KEY_LEN);
        return bsearch(&probe, self->keys, self->n, sizeof(keyset_entry), cmp_entry);
    }
    for (size_t i = 0; i < self->n; i++)
        if (memcmp(self->keys[i].key, raw, BR_CURVE_KEY_LEN) == 0)
            return &self->keys[i];
    return NULL;
}

const char *br_curve_keyset_find(const br_curve_keyset *self, const uint8_t raw[BR_CURVE_KEY_LEN])
{
    const keyset_entry *e = find(self, raw);
    return e ? e->name : NULL;
}

int br_curve_keyset_add(br_curve_keyset *self, const char *z85, size_t len, const char *name,
                        size_t name_len)
{
    uint8_t raw[BR_CURVE_KEY_LEN];
    if (!br_curve_key_valid(z85, len, raw))
        return BR_EVALUE;
    if (find(self, raw))
        return 0;
    if (self->n == BR_CURVE_MAX_KEYS)
        return BR_ELIMIT;
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        if (cap > BR_CURVE_MAX_KEYS)
            cap = BR_CURVE_MAX_KEYS;
        keyset_entry *k = realloc(self->keys, cap * sizeof(*k));
        if (!k)
            return BR_ENOMEM;
        self->keys = k;
        self->cap = cap;
    }
    keyset_entry *e = &self->keys[self->n++];
    memcpy(e->key, raw, BR_CURVE_KEY_LEN);
    if (!name)
        name_len = 0;
    if (name_len > BR_CURVE_NAME_MAX)
        name_len = BR_CURVE_NAME_MAX;
    if (name_len)
        memcpy(e->name, name, name_len);
    e->name[name_len] = '\0';
    self->sorted = 0;
    return 0;
}

/* Orders the keys for bsearch. */
static void keyset_sort(br_curve_keyset *self)
{
    if (self->n > 1)
        qsort(self->keys, self->n, sizeof(keyset_entry), cmp_entry);
    self->sorted = 1;
}

int br_curve_keyset_parse(br_curve_keyset *self, const char *text, size_t len, const char *source,
                          char *why, size_t why_len)
{
    const char *p = text, *end = text + len, *line;
    size_t n, lineno = 0;
    while (br__curve_next_line(&p, end, &line, &n)) {
        lineno++;
        if (n == 0 || line[0] == '#')
            continue;
        size_t k = 0;
        while (k < n && line[k] != ' ' && line[k] != '\t')
            k++;
        const char *name = line + k;
        size_t name_len = n - k;
        while (name_len > 0 && (*name == ' ' || *name == '\t'))
            name++, name_len--;
        int rc = br_curve_keyset_add(self, line, k, name, name_len);
        if (rc == BR_EVALUE)
            br__curve_why(why, why_len, "%s:%zu: want a %d-character Z85 key, then a name", source,
                          lineno, BR_CURVE_Z85_LEN);
        else if (rc == BR_ELIMIT)
            br__curve_why(why, why_len, "%s:%zu: more than %d keys", source, lineno,
                          BR_CURVE_MAX_KEYS);
        else if (rc != 0)
            br__curve_why(why, why_len, "%s:%zu: out of memory", source, lineno);
        if (rc != 0)
            return rc;
    }
    keyset_sort(self);
    return 0;
}

/* Adds the keys of one file. */
static int load_file(br_curve_keyset *self, const char *path, char *why, size_t why_len)
{
    char *text;
    size_t len;
    int rc = br__curve_read_file(path, &text, &len, why, why_len);
    if (rc != 0)
        return rc;
    rc = br_curve_keyset_parse(self, text, len, path, why, why_len);
    free(text);
    return rc;
}

/* Adds the keys of every regular file in a directory whose name does not start with
 * '.' (editors' and Kubernetes' hidden files, "..data" links among them). */
static int load_dir(br_curve_keyset *self, const char *path, char *why, size_t why_len)
{
    DIR *d = opendir(path);
    if (!d) {
        br__curve_why(why, why_len, "opendir(%s): %s", path, strerror(errno));
        return BR_EIO;
    }
    int rc = 0;
    size_t files = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char file[4096];
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(file, sizeof(file), "%s/%s", path, de->d_name) >= sizeof(file))
            continue;
        if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
            continue; /* subdirectories, dangling links */
        if (++files > BR_CURVE_MAX_FILES) {
            br__curve_why(why, why_len, "%s: more than %d files", path, BR_CURVE_MAX_FILES);
            rc = BR_ELIMIT;
            break;
        }
        rc = load_file(self, file, why, why_len);
    }
    closedir(d);
    return rc;
}

int br_curve_keyset_load(br_curve_keyset *self, const char *path, char *why, size_t why_len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        br__curve_why(why, why_len, "stat(%s): %s", path, strerror(errno));
        return BR_EIO;
    }
    int rc = S_ISDIR(st.st_mode) ? load_dir(self, path, why, why_len)
                                 : load_file(self, path, why, why_len);
    keyset_sort(self);
    return rc;
}
