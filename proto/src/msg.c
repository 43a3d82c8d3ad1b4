/*
 * msg.c - facts about the message types and the default limits.
 */
#include "internal.h"

const br_limits br_limits_default = {
    .max_message = 16u * 1024u * 1024u,
    .max_string = 64u * 1024u,
    .max_body = 8u * 1024u * 1024u,
    .max_pairs = 256,
    .max_services = 64,
    .max_routes = 128,
    .max_params = 32,
    .max_tasks = 128,
    .max_jobs = 64,
};

/* Per type: its name and how many fields follow version and type on the wire.  Both
 * the encoder and the decoder take the field count from here. */
static const struct {
    const char *name;
    uint32_t nfields;
} types[BR_MSG_TYPE_MAX + 1] = {
    [BR_MSG_READY] = {"READY", 6},
    [BR_MSG_WELCOME] = {"WELCOME", 2},
    [BR_MSG_REQUEST] = {"REQUEST", 12},
    [BR_MSG_REPLY] = {"REPLY", 6},
    [BR_MSG_CREDIT] = {"CREDIT", 1},
    [BR_MSG_HEARTBEAT] = {"HEARTBEAT", 0},
    [BR_MSG_CANCEL] = {"CANCEL", 1},
    [BR_MSG_GOODBYE] = {"GOODBYE", 1},
    [BR_MSG_CALL] = {"CALL", 12},
    [BR_MSG_JOB] = {"JOB", 5},
    [BR_MSG_JOB_ACK] = {"JOB_ACK", 1},
    [BR_MSG_JOB_RESULT] = {"JOB_RESULT", 4},
    [BR_MSG_WS_OPEN] = {"WS_OPEN", 10},
    [BR_MSG_WS_MESSAGE] = {"WS_MESSAGE", 3},
    [BR_MSG_WS_CLOSE] = {"WS_CLOSE", 3},
    [BR_MSG_WS_CREDIT] = {"WS_CREDIT", 2},
    [BR_MSG_WS_GROUP] = {"WS_GROUP", 5},
    [BR_MSG_WS_BATCH] = {"WS_BATCH", 1},
    [BR_MSG_ACTOR_REQUEST] = {"ACTOR_REQUEST", 17},
    [BR_MSG_ACTOR_REPLY] = {"ACTOR_REPLY", 9},
    [BR_MSG_DEACTIVATE] = {"DEACTIVATE", 3},
    [BR_MSG_ACTOR_TIMER] = {"ACTOR_TIMER", 8},
    [BR_MSG_JOB_PROGRESS] = {"JOB_PROGRESS", 3},
    [BR_MSG_JOB_CANCEL] = {"JOB_CANCEL", 1},
    [BR_MSG_TASK_POLICY] = {"TASK_POLICY", 1},
    [BR_MSG_WORKFLOW] = {"WORKFLOW", 4},
    [BR_MSG_WORKFLOW_REPLY] = {"WORKFLOW_REPLY", 4},
    [BR_MSG_JOB_HANDOFF] = {"JOB_HANDOFF", 6},
    [BR_MSG_STREAM_START] = {"STREAM_START", 4},
    [BR_MSG_STREAM_CHUNK] = {"STREAM_CHUNK", 2},
    [BR_MSG_STREAM_END] = {"STREAM_END", 2},
    [BR_MSG_STREAM_WINDOW] = {"STREAM_WINDOW", 2},
    [BR_MSG_CALL_STREAM_START] = {"CALL_STREAM_START", 4},
    [BR_MSG_CALL_STREAM_CHUNK] = {"CALL_STREAM_CHUNK", 2},
    [BR_MSG_CALL_STREAM_END] = {"CALL_STREAM_END", 2},
    [BR_MSG_CALL_STREAM_WINDOW] = {"CALL_STREAM_WINDOW", 2},
};

const char *br_msg_type_name(unsigned type)
{
    return br__msg_known(type) ? types[type].name : "UNKNOWN";
}

bool br_msg_type_in_version(unsigned type, unsigned version)
{
    if (!br__msg_known(type))
        return false;
    unsigned since = type >= BR_MSG_V3_FIRST && type <= BR_MSG_V3_LAST ? 3u
                     : type >= BR_MSG_V2_FIRST                         ? 2u
                                                                       : 1u;
    return version >= since && version <= BR_PROTO_VERSION;
}

uint32_t br__msg_nfields(unsigned type)
{
    return br__msg_known(type) ? types[type].nfields : 0;
}

bool br__msg_known(unsigned type)
{
    return type >= 1 && type <= BR_MSG_TYPE_MAX && types[type].name != NULL;
}

bool br_msg_type_known(unsigned type)
{
    return br__msg_known(type);
}
