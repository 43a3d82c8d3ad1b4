/*
 * fuzz.h - the libFuzzer entry point, shared by the fuzzer build and the replay
 * driver that runs the saved corpus in every CTest run.
 */
#ifndef BARISTA_TESTS_FUZZ_H
#define BARISTA_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input; returns 0 (libFuzzer's convention) and aborts on a broken promise. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* BARISTA_TESTS_FUZZ_H */
