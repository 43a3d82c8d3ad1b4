/*
 * chat.c - WebSockets: an echo endpoint and chat rooms.
 *
 *   GET /ws/echo          (WebSocket) every message comes back as it was sent; the
 *                         text "close CODE" closes the connection with CODE instead
 *   GET /chat/{room}      (WebSocket) every message goes to everyone in the room,
 *                         on whichever worker of the service they are connected;
 *                         the text "/whoami" is answered to its sender only, with the
 *                         worker's pid
 *
 * Rooms are the gateway's groups (br_ws_join, br_ws_broadcast): the service keeps no
 * list of connections, so two or more workers serve one room without talking to each
 * other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "services.h"

static void echo_message(br_ws *ws, bool binary, br_str data)
{
    if (!binary && data.len > 6 && data.len < 12 && memcmp(data.ptr, "close ", 6) == 0) {
        char code[8] = {0};
        memcpy(code, data.ptr + 6, data.len - 6);
        br_ws_close(ws, (uint16_t)strtoul(code, NULL, 10), "closed on request");
        return;
    }
    if (binary)
        br_ws_send_binary(ws, data.ptr, data.len);
    else
        br_ws_send_text(ws, data.ptr, data.len);
}

/* The room's group name: "room:" and the room. */
static void room_group(br_ws *ws, char *out, size_t cap)
{
    br_str room;
    br_ws_param(ws, "room", &room);
    snprintf(out, cap, "room:%.*s", (int)room.len, room.ptr);
}

static void chat_open(br_ws *ws)
{
    char group[72];
    room_group(ws, group, sizeof(group));
    br_ws_join(ws, group);
}

static void chat_message(br_ws *ws, bool binary, br_str data)
{
    if (!binary && br_str_eq(data, "/whoami")) {
        /* Which worker holds this connection (the two-worker demo shows it). */
        char pid[32];
        int n = snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
        br_ws_send_text(ws, pid, (size_t)n);
        return;
    }
    char group[72];
    room_group(ws, group, sizeof(group));
    br_ws_broadcast(br_ws_svc(ws), group, binary, data.ptr, data.len, NULL);
}

static const br_ws_spec echo_ws = {.on_message = echo_message, .subprotocols = "echo.v1"};
static const br_ws_spec chat_ws = {.on_open = chat_open, .on_message = chat_message};

static const br_param_spec room_param[] = {
    {.name = "room",
     .in = BR_IN_PATH,
     .type = BR_TYPE_STR,
     .required = true,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = 59,
     .summary = "the room to join"},
};

static const br_route_spec routes[] = {
    {.method = "GET", .path = "/ws/echo", .summary = "WebSocket echo", .websocket = &echo_ws},
    {.method = "GET",
     .path = "/chat/{room}",
     .summary = "A chat room over WebSocket",
     .params = room_param,
     .nparams = BR_NELEMS(room_param),
     .websocket = &chat_ws},
};

const br_service_spec br_chat_service = {
    .name = "chat",
    .kind = BR_KIND_IO,
    .summary = "WebSockets: echo, and chat rooms across workers",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
