/*
 * keys.c - the gateway's CURVE certificates (see zap.h): its own key pair, and the
 * authorised workers' public certificates in a CZMQ zcertstore.
 *
 * The store is an in-memory one (zcertstore_new(NULL)) filled here, not CZMQ's disk
 * store: that one re-reads the directory inside every lookup, on the loop, and skips
 * a bad file without a word.  Here every file is checked (br_curve_cert_read), a bad
 * one stops the load with FILE: reason, and a reload (SIGHUP) builds a whole new
 * store on the thread pool and swaps it in on the loop, or keeps the old one.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <czmq.h>

#include "broker_int.h"
#include "zap.h"

/* Name of the services metadata value that allows every service. */
#define SERVICES_ANY "*"

/* A load of the authorised certificates, on the thread pool or at start. */
typedef struct keys_load {
    uv_work_t work;                      /* the thread-pool request */
    gw_curve *curve;                     /* the set being reloaded */
    char path[GW_CURVE_PATH_MAX];        /* what to read */
    char self_key[BR_CURVE_Z85_LEN + 1]; /* authorise this key for any service; "" none */
    zcertstore_t *store;                 /* the result (NULL on failure) */
    size_t count;                        /* certificates in it */
    char why[2 * GW_CURVE_PATH_MAX];     /* the reason of a failure */
    char notes[512];                     /* certificates without services (logged after) */
    void (*done)(void *arg, int rc);     /* the caller's callback */
    void *arg;                           /* its argument */
} keys_load;

/* Inserts cert (taking it) unless its key is there already.  0 or BR_EVALUE. */
static int insert(keys_load *l, zcert_t **cert, const char *file)
{
    if (zcertstore_lookup(l->store, zcert_public_txt(*cert))) {
        snprintf(l->why, sizeof(l->why), "%s: key %s is authorised twice", file,
                 zcert_public_txt(*cert));
        zcert_destroy(cert);
        return BR_EVALUE;
    }
    if (!zcert_meta(*cert, BR_CURVE_META_SERVICES) && strlen(l->notes) < sizeof(l->notes) / 2) {
        size_t n = strlen(l->notes);
        snprintf(l->notes + n, sizeof(l->notes) - n, "%s%s", n ? ", " : "", file);
    }
    zcertstore_insert(l->store, cert); /* takes it; asserts on a duplicate, checked above */
    l->count++;
    return 0;
}

static int load_file(keys_load *l, const char *file)
{
    zcert_t *cert;
    if (br_curve_cert_read(file, false, &cert, l->why, sizeof(l->why)) != 0)
        return BR_EVALUE;
    return insert(l, &cert, file);
}

/* True for a file name the loader skips: hidden ones (editors', Kubernetes' "..data")
 * and secret certificates, which have no business here (zcertstore skips them too). */
static bool skipped(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' || (n >= 7 && strcmp(name + n - 7, "_secret") == 0);
}

/* Reads every certificate of a directory (not its subdirectories). */
static int load_dir(keys_load *l)
{
    DIR *d = opendir(l->path);
    if (!d) {
        snprintf(l->why, sizeof(l->why), "opendir(%s): %s", l->path, strerror(errno));
        return BR_EIO;
    }
    int rc = 0;
    size_t files = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char file[GW_CURVE_PATH_MAX + 256];
        struct stat st;
        if (skipped(de->d_name))
            continue;
        if ((size_t)snprintf(file, sizeof(file), "%s/%s", l->path, de->d_name) >= sizeof(file))
            continue;
        if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
            continue; /* subdirectories, dangling links */
        if (++files > GW_CURVE_MAX_CERTS) {
            snprintf(l->why, sizeof(l->why), "%s: more than %d certificates", l->path,
                     GW_CURVE_MAX_CERTS);
            rc = BR_ELIMIT;
            break;
        }
        rc = load_file(l, file);
    }
    closedir(d);
    return rc;
}

/* Authorises `key` (the broker's own) for every service in store, unless the store
 * has a certificate for it already.  1 when added, 0 when there, BR_ENOMEM. */
static int add_self(zcertstore_t *store, const char *key)
{
    uint8_t raw[BR_CURVE_KEY_LEN], none[BR_CURVE_KEY_LEN] = {0};
    if (zcertstore_lookup(store, key))
        return 0;
    br_curve_key_valid(key, strlen(key), raw);
    zcert_t *self = zcert_new_from(raw, none);
    if (!self)
        return BR_ENOMEM;
    zcert_set_meta(self, BR_CURVE_META_NAME, "local");
    zcert_set_meta(self, BR_CURVE_META_SERVICES, SERVICES_ANY);
    zcertstore_insert(store, &self);
    return 1;
}

/* Builds l->store from l->path (and l->self_key); on failure l->store is NULL and
 * l->why says why.  Runs on the thread pool during reloads: touches nothing shared. */
static void load_all(keys_load *l)
{
    struct stat st;
    l->store = zcertstore_new(NULL);
    int rc = BR_ENOMEM;
    if (!l->store) {
        snprintf(l->why, sizeof(l->why), "out of memory");
        return;
    }
    if (stat(l->path, &st) != 0) {
        snprintf(l->why, sizeof(l->why), "stat(%s): %s", l->path, strerror(errno));
        rc = BR_EIO;
    } else {
        rc = S_ISDIR(st.st_mode) ? load_dir(l) : load_file(l, l->path);
    }
    if (rc == 0 && l->self_key[0] && add_self(l->store, l->self_key) > 0)
        l->count++;
    if (rc != 0)
        zcertstore_destroy(&l->store);
}

/* Logs what a successful load found. */
static void log_loaded(const keys_load *l, const char *what)
{
    gw_log(GW_LOG_INFO, "broker", "%s %zu authorised worker certificates from %s", what, l->count,
           l->path);
    if (l->notes[0])
        gw_log(GW_LOG_WARN, "broker",
               "certificates without \"services\" metadata (their holders may serve no "
               "service): %s",
               l->notes);
}

int gw_curve_load(gw_curve *out, const char *secret_key_file, const char *authorized)
{
    char why[512];
    memset(out, 0, sizeof(*out));
    if (!secret_key_file[0] && !authorized[0])
        return 0;
    if (!secret_key_file[0] || !authorized[0]) {
        gw_log(GW_LOG_ERROR, "broker",
               "--curve-secret-key-file and --curve-authorized-keys go together (CURVE "
               "without authorised keys would admit any key)");
        return -1;
    }
    if (strlen(authorized) >= sizeof(out->authorized)) {
        gw_log(GW_LOG_ERROR, "broker", "--curve-authorized-keys: path too long");
        return -1;
    }
    if (br_curve_keypair_read(secret_key_file, &out->server, why, sizeof(why)) != 0) {
        gw_log(GW_LOG_ERROR, "broker", "--curve-secret-key-file: %s", why);
        return -1;
    }
    keys_load l;
    memset(&l, 0, sizeof(l));
    snprintf(l.path, sizeof(l.path), "%s", authorized);
    load_all(&l);
    if (!l.store) {
        gw_log(GW_LOG_ERROR, "broker", "--curve-authorized-keys: %s", l.why);
        gw_curve_release(out);
        return -1;
    }
    snprintf(out->authorized, sizeof(out->authorized), "%s", authorized);
    out->clients = l.store;
    out->nclients = l.count;
    out->on = true;
    log_loaded(&l, "worker authentication on: CURVE,");
    gw_log(GW_LOG_INFO, "broker", "broker public key %s", out->server.public_key);
    return 0;
}

int gw_curve_authorise_self(gw_curve *c)
{
    if (!c->on)
        return BR_EINVAL;
    int rc = add_self(c->clients, c->server.public_key);
    if (rc < 0)
        return rc;
    c->nclients += (size_t)rc;
    c->self_authorised = true;
    return 0;
}

static void reload_work(uv_work_t *work)
{
    load_all(work->data);
}

static void reload_done(uv_work_t *work, int status)
{
    keys_load *l = work->data;
    gw_curve *c = l->curve;
    int rc = -1;
    c->reloading = false;
    if (status != 0 || !l->store) {
        gw_log(GW_LOG_ERROR, "broker",
               "reloading the authorised keys failed, keeping the %zu "
               "loaded before: %s",
               c->nclients, status != 0 ? uv_strerror(status) : l->why);
        zcertstore_destroy(&l->store);
    } else if (c->on) {
        zcertstore_destroy(&c->clients);
        c->clients = l->store;
        c->nclients = l->count;
        log_loaded(l, "reloaded:");
        rc = 0;
    } else {
        zcertstore_destroy(&l->store); /* released while it ran */
    }
    if (l->done)
        l->done(l->arg, rc);
    free(l);
}

int gw_curve_reload(gw_curve *c, uv_loop_t *loop, void (*done)(void *arg, int rc), void *arg)
{
    if (!c->on)
        return BR_EINVAL;
    if (c->reloading)
        return BR_EFULL;
    keys_load *l = calloc(1, sizeof(*l));
    if (!l)
        return BR_ENOMEM;
    l->curve = c;
    l->done = done;
    l->arg = arg;
    snprintf(l->path, sizeof(l->path), "%s", c->authorized);
    if (c->self_authorised)
        memcpy(l->self_key, c->server.public_key, sizeof(l->self_key));
    l->work.data = l;
    int rc = uv_queue_work(loop, &l->work, reload_work, reload_done);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "broker", "uv_queue_work(reload keys) failed: %s", uv_strerror(rc));
        free(l);
        return BR_EIO;
    }
    c->reloading = true;
    return 0;
}

void gw_curve_release(gw_curve *c)
{
    br_curve_keypair_wipe(&c->server);
    zcertstore_destroy(&c->clients);
    c->nclients = 0;
    c->on = false;
}

bool gw_curve_known(const gw_curve *c, const char *key)
{
    return c->on && key && zcertstore_lookup(c->clients, key) != NULL;
}

const char *gw_curve_name(const gw_curve *c, const char *key)
{
    zcert_t *cert = c->on && key ? zcertstore_lookup(c->clients, key) : NULL;
    const char *name = cert ? zcert_meta(cert, BR_CURVE_META_NAME) : NULL;
    return name && name[0] ? name : key;
}

/* True when the comma-separated `list` names `service` or is "*". */
static bool list_has(const char *list, br_str service)
{
    if (strcmp(list, SERVICES_ANY) == 0)
        return true;
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == service.len && memcmp(p, service.ptr, n) == 0)
            return true;
        p += n + (comma != NULL);
    }
    return false;
}

int gw_curve_may_serve(const gw_curve *c, const char *key, br_str service, char *why, size_t cap)
{
    zcert_t *cert = c->on && key ? zcertstore_lookup(c->clients, key) : NULL;
    if (!cert) {
        snprintf(why, cap, "key %s is not authorised", key ? key : "(none)");
        return BR_EVALUE;
    }
    const char *list = zcert_meta(cert, BR_CURVE_META_SERVICES);
    if (list && list_has(list, service))
        return 0;
    snprintf(why, cap, "key %s may not serve service '%.*s' (its certificate allows: %s)",
             gw_curve_name(c, key), (int)service.len, service.ptr, list ? list : "no service");
    return BR_EVALUE;
}
