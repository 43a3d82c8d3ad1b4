/*
 * fuzz_decode.c - the protocol decoder under arbitrary bytes.
 *
 * The property (samples.c, sample_decode_check): decoding either fails with *out
 * zeroed, or succeeds with a message that encodes again and decodes to an equal
 * message.  ASan and UBSan catch everything else: reads outside the input, leaks,
 * undefined arithmetic, and allocations a declared count could not justify.  A
 * WS_BATCH is split (barista/ws_batch.h) and each message in it checked the same way,
 * as the gateway and the worker split one.
 */
#include <stdio.h>
#include <stdlib.h>

#include "barista/ws_batch.h"
#include "fuzz.h"
#include "samples.h"

static void broken(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_decode: decode/encode/decode disagreed on a %zu-byte %s\n", size, what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = sample_decode_check(data, size);
    if (rc == SAMPLE_BROKEN)
        broken("input", size);
    br_decoder *dec = br_decoder_new(NULL);
    br_msg m;
    if (dec && rc == 0 && br_decoder_decode(dec, data, size, &m) == 0 &&
        m.type == BR_MSG_WS_BATCH) {
        br_str rest = m.u.ws_batch.messages, one;
        while (br_ws_batch_next(&rest, &one) == 1) {
            if (one.len == 0 || one.len > m.u.ws_batch.messages.len)
                broken("split", one.len);
            if (sample_decode_check((const uint8_t *)one.ptr, one.len) == SAMPLE_BROKEN)
                broken("batched message", one.len);
        }
    }
    br_decoder_destroy(&dec);
    return 0;
}
