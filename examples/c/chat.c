/* The reference `chat` module (docs/HANDLERS.md), in C.
 *
 * Room R lives in tag "chat:R". A room name is 1..64 characters from
 * [A-Za-z0-9_.-]; data must be an object whose "room" is such a string,
 * else the reply is send_error(event, "invalid room"). ERR_DENIED from a tag
 * call becomes send_error(event, "denied"). Other host errors fail the call
 * with the (negative) host status. */
#include "switchyard.h"

SWITCHYARD_ABI_V1();

#define ROOM_MAX 64
#define TAG_PREFIX "chat:"

typedef struct room {
    sy_str name;                                /* unescaped room name */
    sy_str tag;                                 /* "chat:" + name */
    char name_buf[ROOM_MAX];                    /* used when "room" had escapes */
    char tag_buf[sizeof(TAG_PREFIX) - 1 + ROOM_MAX];
} room;

static bool room_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* Reads and checks data.room; replies "invalid room" and returns false if bad. */
static bool read_room(const sy_request *req, room *r) {
    if (sy_json_get_string(req->data, "room", r->name_buf, ROOM_MAX, &r->name) != SY_JSON_OK ||
        r->name.len < 1 || r->name.len > ROOM_MAX)
        goto invalid;
    for (size_t i = 0; i < r->name.len; i++)
        if (!room_char(r->name.ptr[i])) goto invalid;
    sy_copy(r->tag_buf, TAG_PREFIX, sizeof(TAG_PREFIX) - 1);
    sy_copy(r->tag_buf + sizeof(TAG_PREFIX) - 1, r->name.ptr, r->name.len);
    r->tag = sy_str_make(r->tag_buf, sizeof(TAG_PREFIX) - 1 + r->name.len);
    return true;
invalid:
    sy_reply_error(req->event, SY_LIT("invalid room"));
    return false;
}

/* A failed host call: ERR_DENIED is answered with "denied", the rest fail. */
static int32_t host_failed(const sy_request *req, int32_t status) {
    if (status == SY_ERR_DENIED) {
        sy_reply_error(req->event, SY_LIT("denied"));
        return 0;
    }
    return status;
}

/* send_success(event, {"room": R, "users": <members>}) */
static int32_t reply_room_users(sy_str event, const room *r, sy_str members) {
    sy_jw w;
    if (!sy_jw_alloc(&w, 20 + sy_json_escaped_len(r->name) + members.len)) return SY_ERR_LIMIT;
    sy_jw_lit(&w, "{\"room\":");
    sy_jw_str(&w, r->name);
    sy_jw_lit(&w, ",\"users\":");
    sy_jw_raw_str(&w, members);
    sy_jw_lit(&w, "}");
    int32_t st = sy_reply(event, sy_jw_result(&w));
    return st < 0 ? st : 0;
}

SWITCHYARD_HANDLER(chat_join) {
    room r;
    if (!read_room(req, &r)) return 0;
    int32_t st = sy_tag_join(r.tag);
    if (st < 0) return host_failed(req, st);
    sy_str members;
    st = sy_tag_members_get(r.tag, &members);
    if (st < 0) return host_failed(req, st);
    return reply_room_users(SY_LIT("chat/join"), &r, members);
}

SWITCHYARD_HANDLER(chat_online) {
    room r;
    if (!read_room(req, &r)) return 0;
    sy_str members;
    int32_t st = sy_tag_members_get(r.tag, &members);
    if (st < 0) return host_failed(req, st);
    return reply_room_users(SY_LIT("chat/online"), &r, members);
}

SWITCHYARD_HANDLER(chat_send) {
    room r;
    if (!read_room(req, &r)) return 0;

    /* "text" is passed on as its raw JSON string: same value, no re-escaping. */
    sy_str text;
    if (sy_json_get_raw(req->data, "text", &text) != SY_JSON_OK ||
        sy_json_type_of(text) != SY_JSON_STRING) {
        sy_reply_error(req->event, SY_LIT("invalid text"));
        return 0;
    }

    /* {"room": R, "from": <user id>, "text": <text>} */
    sy_jw w;
    if (!sy_jw_alloc(&w, 32 + sy_json_escaped_len(r.name) + sy_json_escaped_len(req->user_id) +
                             text.len))
        return SY_ERR_LIMIT;
    sy_jw_lit(&w, "{\"room\":");
    sy_jw_str(&w, r.name);
    sy_jw_lit(&w, ",\"from\":");
    sy_jw_str(&w, req->user_id);
    sy_jw_lit(&w, ",\"text\":");
    sy_jw_raw_str(&w, text);
    sy_jw_lit(&w, "}");

    int32_t n = sy_send_tag(r.tag, SY_LIT("chat/message"), sy_jw_result(&w));
    if (n < 0) return host_failed(req, n);

    char buf[32];
    sy_jw_init(&w, buf, sizeof buf);
    sy_jw_lit(&w, "{\"delivered\":");
    sy_jw_int(&w, n);
    sy_jw_lit(&w, "}");
    int32_t st = sy_reply(SY_LIT("chat/send"), sy_jw_result(&w));
    return st < 0 ? st : 0;
}
