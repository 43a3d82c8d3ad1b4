/*
 * keygen.c - barista-keygen: a thin tool over CZMQ's zcert.  It writes a new CURVE
 * certificate - FILE (the public certificate) and FILE_secret (both keys, mode 0600),
 * in the format every CZMQ program reads - with the metadata the gateway uses (name,
 * services), and prints the public key on stdout.  It never replaces a key pair:
 * --update keeps FILE_secret's keys and rewrites only the metadata.  The format and
 * the metadata are described in barista/curve.h and docs/broker.md.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "barista/curve.h"

static const char usage[] =
    "usage: barista-keygen [--name NAME] [--services LIST] [--update] FILE\n"
    "\n"
    "Writes a new ZeroMQ CURVE certificate in CZMQ's format (zcert): FILE, the public\n"
    "certificate, and FILE_secret, which also holds the secret key (mode 0600), then\n"
    "prints the public key.  FILE and FILE_secret must not exist.\n"
    "\n"
    "  --name NAME       a name for the gateway's log lines (metadata \"name\")\n"
    "  --services LIST   the services a worker holding this key may serve:\n"
    "                    comma-separated names, or * for any (metadata \"services\");\n"
    "                    a worker certificate without it may serve no service\n"
    "  --update          FILE_secret exists: keep its key pair and rewrite FILE and\n"
    "                    FILE_secret with the metadata given\n"
    "\n"
    "The gateway takes its own FILE_secret (--curve-secret-key-file) and a directory of\n"
    "workers' public certificates (--curve-authorized-keys); a worker takes its\n"
    "FILE_secret and the gateway's public certificate (--curve-server-key @FILE).\n";

/* Longest --name; longer ones are refused. */
#define KEYGEN_NAME_MAX 64

/* A usage error: "barista-keygen: WHAT ARG" on stderr, exit status 2. */
static int fail(const char *what, const char *arg)
{
    fprintf(stderr, "barista-keygen: %s%s\n", what, arg);
    return 2;
}

/* True for a comma-separated list of service names (printable, no spaces), or "*". */
static bool services_ok(const char *list)
{
    if (strcmp(list, "*") == 0)
        return true;
    size_t run = 0;
    for (const char *p = list;; p++) {
        if (*p == ',' || *p == '\0') {
            if (run == 0)
                return false;
            if (*p == '\0')
                return true;
            run = 0;
        } else if (*p <= ' ' || *p > '~' || *p == '"' || *p == '*') {
            return false;
        } else {
            run++;
        }
    }
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"name", required_argument, NULL, 'n'},
                                             {"services", required_argument, NULL, 's'},
                                             {"update", no_argument, NULL, 'u'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *name = NULL, *services = NULL;
    bool update = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 's':
            services = optarg;
            break;
        case 'u':
            update = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return fail("unknown option or missing value (see --help): ", argv[optind - 1]);
        }
    }
    if (optind != argc - 1 || argv[optind][0] == '\0')
        return fail("want exactly one FILE argument (see --help)", "");
    const char *file = argv[optind];
    if (name && (strlen(name) == 0 || strlen(name) > KEYGEN_NAME_MAX || strchr(name, '"')))
        return fail("bad --name (1 to 64 characters, no quotes): ", name);
    if (services && !services_ok(services))
        return fail("bad --services (comma-separated names, or *): ", services);
    char secret[BR_CURVE_PATH_MAX + 16];
    if (strlen(file) > BR_CURVE_PATH_MAX)
        return fail("path too long: ", file);
    snprintf(secret, sizeof(secret), "%s_secret", file);

    zcert_t *cert = NULL;
    char why[512];
    if (update) {
        if (br_curve_cert_read(secret, true, &cert, why, sizeof(why)) != 0) {
            fprintf(stderr, "barista-keygen: --update: %s\n", why);
            return 1;
        }
        /* Only the metadata given: a fresh certificate with the same keys. */
        zcert_t *fresh = zcert_new_from(zcert_public_key(cert), zcert_secret_key(cert));
        zcert_destroy(&cert);
        cert = fresh;
    } else {
        if (exists(file) || exists(secret)) {
            fprintf(stderr, "barista-keygen: %s: File exists (a key pair is never replaced)\n",
                    exists(file) ? file : secret);
            return 1;
        }
        cert = zcert_new();
    }
    if (!cert) {
        fputs("barista-keygen: zcert_new failed: out of memory or no CURVE in libzmq\n", stderr);
        return 1;
    }
    if (name)
        zcert_set_meta(cert, BR_CURVE_META_NAME, "%s", name);
    if (services)
        zcert_set_meta(cert, BR_CURVE_META_SERVICES, "%s", services);
    /* zcert_save writes FILE (public), then FILE_secret with mode 0600. */
    int rc = zcert_save(cert, file);
    if (rc == 0 && (!exists(file) || !exists(secret)))
        rc = -1; /* zcert_save reports only the secret file's write */
    if (rc == 0)
        printf("%s\n", zcert_public_txt(cert));
    else
        fprintf(stderr, "barista-keygen: cannot write %s: %s\n", file, strerror(errno));
    zcert_destroy(&cert);
    return rc == 0 ? 0 : 1;
}
