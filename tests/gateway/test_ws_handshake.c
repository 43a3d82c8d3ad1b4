/*
 * test_ws_handshake.c - Sec-WebSocket-Accept (RFC 6455's own example), keys that are
 * not 16 bytes of base64, Connection/Upgrade token lists, subprotocol choice.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "barista/types.h"
#include "ws_handshake.h"

static void computes_the_rfc_example_accept_value(void **state)
{
    (void)state;
    char out[GW_WS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(gw_ws_accept_key(key, strlen(key), out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void refuses_keys_that_are_not_16_bytes_of_base64(void **state)
{
    (void)state;
    char out[GW_WS_ACCEPT_LEN + 1];
    const char *bad[] = {"",
                         "dGhlIHNhbXBsZSBub25jZQ=",
                         "dGhlIHNhbXBsZSBub25jZQ==x",
                         "dGhlIHNhbXBsZSBub25jZ===",
                         "dGhlIHNhbXBsZSBub2!jZQ==",
                         "dGhlIHNhbXBsZSBub25jZQab"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gw_ws_accept_key(bad[i], strlen(bad[i]), out), BR_EVALUE);
}

static void finds_tokens_in_header_lists(void **state)
{
    (void)state;
    const char *v = "keep-alive, Upgrade";
    assert_true(gw_ws_header_has_token(v, strlen(v), "upgrade"));
    assert_true(gw_ws_header_has_token(v, strlen(v), "keep-alive"));
    assert_false(gw_ws_header_has_token(v, strlen(v), "close"));
    v = " ,websocket ,";
    assert_true(gw_ws_header_has_token(v, strlen(v), "WebSocket"));
    v = "websockets";
    assert_false(gw_ws_header_has_token(v, strlen(v), "websocket"));
    assert_false(gw_ws_header_has_token(NULL, 0, "websocket"));
}

static void picks_the_clients_first_supported_subprotocol(void **state)
{
    (void)state;
    const char *name;
    size_t n;
    const char *offered = "v2.chat, v1.chat ,x";
    const char *supported = "v1.chat v2.chat";
    assert_true(
        gw_ws_pick_subprotocol(offered, strlen(offered), supported, strlen(supported), &name, &n));
    assert_int_equal(n, 7);
    assert_memory_equal(name, "v2.chat", 7);
    offered = "v3, v1.chat";
    assert_true(
        gw_ws_pick_subprotocol(offered, strlen(offered), supported, strlen(supported), &name, &n));
    assert_memory_equal(name, "v1.chat", 7);
    offered = "v1";
    assert_false(
        gw_ws_pick_subprotocol(offered, strlen(offered), supported, strlen(supported), &name, &n));
    assert_false(gw_ws_pick_subprotocol(NULL, 0, supported, strlen(supported), &name, &n));
    assert_false(gw_ws_pick_subprotocol(offered, strlen(offered), "", 0, &name, &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(computes_the_rfc_example_accept_value),
        cmocka_unit_test(refuses_keys_that_are_not_16_bytes_of_base64),
        cmocka_unit_test(finds_tokens_in_header_lists),
        cmocka_unit_test(picks_the_clients_first_supported_subprotocol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
