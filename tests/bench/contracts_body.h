/*
 * contracts_body.h - the benchmark's 1 KiB JSON body for the 10-field BenchUser model
 * (tests/workers/typed_service.c, tests/integration/fastapi_twin.py).  contracts_bench.c
 * times its validation; contracts_bench.py posts it.  Exactly 1024 bytes.
 */
#ifndef BARISTA_CONTRACTS_BODY_H
#define BARISTA_CONTRACTS_BODY_H

#define CONTRACTS_BENCH_BODY                                                                       \
    "{\"id\":\"3fa85f64-5717-4562-b3fc-2c963f66afa6\",\"name\":\"Ada Lovelace of the Analytical "  \
    "Engi"                                                                                         \
    "ne\",\"email\":\"ada.lovelace@example.com\",\"age\":36,\"score\":98.25,\"active\":true,"      \
    "\"role\":\"high"                                                                              \
    "\",\"tags\":[\"mathematics-xxxxxxxxxxxxxxxxxxxx\",\"poetry-xxxxxxxxxxxxxxxxxxxx\",\"engines-" \
    "xxxx"                                                                                         \
    "xxxxxxxxxxxxxxxx\",\"algorithms-xxxxxxxxxxxxxxxxxxxx\",\"notes-xxxxxxxxxxxxxxxxxxxx\","       \
    "\"bernou"                                                                                     \
    "lli-xxxxxxxxxxxxxxxxxxxx\",\"punched-cards-xxxxxxxxxxxxxxxxxxxx\",\"looms-xxxxxxxxxxxxxxxxxx" \
    "xx\",\"science-xxxxxxxxxxxxxxxxxxxx\",\"analysis-xxxxxxxxxxxxxxxxxxxx\",\"calculus-"          \
    "xxxxxxxxxxx"                                                                                  \
    "xxxxxxxxx\",\"music-xxxxxxxxxxxxxxxxxxxx\",\"logic-xxxxxxxxxxxxxxxxxxxx\",\"difference-"      \
    "xxxxxxx"                                                                                      \
    "xxxxxxxxxxxxx\",\"correspondence-xxxxxxxxxxxxxxxxxxxx\",\"babbage-xxxxxxxxxxxxxxxxxxxx\","    \
    "\"lon"                                                                                        \
    "don-xxxxxxxxxxxxxxxxxxxx\",\"victorian-xxxxxxxxxxxxxxxxxxxx\",\"computing-xxxxxxxxxxxxxxxxxx" \
    "xx\",\"countess-xxxxxxxxxxxxxxxxxxxxyyyyyyyyyyy\"],\"bio\":\"Augusta Ada King, Countess of "  \
    "Lov"                                                                                          \
    "elace, was an English mathematician and writer, chiefly known for her work on the propos"     \
    "ed Analytical Engine of Charles Babbage.\",\"visits\":1843}"

#endif /* BARISTA_CONTRACTS_BODY_H */
