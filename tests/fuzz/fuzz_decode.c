/*
 * fuzz_decode.c - the protocol decoder under arbitrary bytes.
 *
 * The property (samples.c, sample_decode_check): decoding either fails with *out
 * zeroed, or succeeds with a message that encodes again and decodes to an equal
 * message.  ASan and UBSan catch everything else: reads outside the input, leaks,
 * undefined arithmetic, and allocations a declared count could not justify.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "samples.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = sample_decode_check(data, size);
    if (rc == SAMPLE_BROKEN) {
        fprintf(stderr, "fuzz_decode: decode/encode/decode disagreed on a %zu-byte input\n", size);
        abort();
    }
    return 0;
}
