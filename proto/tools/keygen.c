/*
 * keygen.c - barista-keygen FILE: writes a new CURVE key pair to FILE (mode 0600,
 * never replacing a file) and prints its public key, the line to add to the gateway's
 * authorised keys, on stdout.  The file format is in barista/curve.h and
 * docs/broker.md.
 */
#include <stdio.h>
#include <string.h>

#include "barista/curve.h"

static const char usage[] =
    "usage: barista-keygen FILE\n"
    "\n"
    "Writes a new ZeroMQ CURVE key pair (public + secret, Z85) to FILE with mode 0600\n"
    "and prints the public key on stdout.  FILE must not exist.  Give the file to the\n"
    "process that owns the key (gateway: --curve-secret-key-file; worker:\n"
    "--curve-secret-key-file) and the public key to its peers (a worker's goes into the\n"
    "gateway's --curve-authorized-keys; the gateway's is the workers' --curve-server-key).\n";

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fputs("barista-keygen: want exactly one argument, the key-pair file (see --help)\n",
              stderr);
        return 2;
    }
    br_curve_keypair kp;
    char why[256];
    if (br_curve_keypair_generate(&kp) != 0) {
        fputs("barista-keygen: zmq_curve_keypair failed: libzmq was built without CURVE\n", stderr);
        return 1;
    }
    int rc = br_curve_keypair_write(argv[1], &kp, why, sizeof(why));
    br_curve_keypair_wipe(&kp);
    if (rc != 0) {
        fprintf(stderr, "barista-keygen: %s\n", why);
        return 1;
    }
    printf("%s\n", kp.public_key);
    return 0;
}
