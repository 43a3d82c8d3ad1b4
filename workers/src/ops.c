/*
 * ops.c - the operations a request owns, and pins: what lets an async operation
 * outlive neither its request's answer (abort) nor, for thread-pool jobs, its memory
 * (pin).  See async_int.h.
 */
#include "async_int.h"
#include "request.h"

void br__op_link(br_req *req, br__op *op)
{
    op->prev = NULL;
    op->next = req->ops;
    if (req->ops)
        req->ops->prev = op;
    req->ops = op;
}

void br__op_unlink(br_req *req, br__op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else if (req->ops == op)
        req->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
}

void br__ops_abort(br_req *req)
{
    /* An abort never calls back into the handler, so it cannot link new operations;
     * each one is unlinked before its abort frees it. */
    while (req->ops) {
        br__op *op = req->ops;
        br__op_unlink(req, op);
        op->abort(op);
    }
}

uint32_t br__req_budget(const br_req *req, uint32_t timeout_ms)
{
    uint32_t budget = br_req_remaining_ms(req);
    return timeout_ms && timeout_ms < budget ? timeout_ms : budget;
}

void br__req_pin(br_req *req)
{
    req->pins++;
}

void br__req_unpin(br_req *req)
{
    if (--req->pins == 0 && req->release_deferred) {
        req->release_deferred = false;
        br__req_release(req);
    }
}
