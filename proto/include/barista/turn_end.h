/*
 * barista/turn_end.h - one callback at the end of the current libuv loop turn.
 *
 * br_turn_end_arm() asks for fn to run once, after the turn's I/O callbacks (a
 * uv_check handle), wherever the turn's work started.  A check runs after the loop's
 * poll, so work armed *before* the poll - in a timer, or in a uv_prepare such as the
 * drain zsock.c runs - would wait for that poll to return: for the next event or timer,
 * a quarter of a second when nothing else comes.  An idle handle started with the check
 * keeps the poll from blocking while the callback is armed.
 *
 * The gateway and the worker send a turn's batch of messages with it (WS_BATCH).
 */
#ifndef BARISTA_TURN_END_H
#define BARISTA_TURN_END_H

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct br_turn_end {
    uv_check_t check; /* runs fn after the turn's I/O */
    uv_idle_t wake;   /* started with check: the poll does not wait while armed */
    void (*fn)(void *arg);
    void *arg;
} br_turn_end;

/* Initialises both handles on loop; nothing runs until br_turn_end_arm. */
void br_turn_end_init(br_turn_end *t, uv_loop_t *loop, void (*fn)(void *arg), void *arg);

/* fn(arg) runs once at the end of this turn; a no-op while already armed. */
void br_turn_end_arm(br_turn_end *t);

/* Disarms and closes both handles.  cb, if not NULL, is called once for each of the two
 * (their data is t), so a caller counting its open handles counts two. */
void br_turn_end_close(br_turn_end *t, uv_close_cb cb);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_TURN_END_H */
