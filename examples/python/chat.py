"""The reference `chat` module in Python (docs/HANDLERS.md): rooms on top of tags.

Room R is the tag `chat:R`. Every handler first reads `data.room`, which must be a string of 1
to 64 characters from [A-Za-z0-9_.-]; otherwise it answers send_error(event, "invalid room")
and succeeds. `Denied` from any tag call (the manifest does not grant `chat:*`) is answered
with send_error(event, "denied"). Any other host error fails the event with its (negative)
status.

| export        | event         | reply |
|---------------|---------------|-------|
| `chat_join`   | `chat/join`   | joins `chat:R`, then {"room": R, "users": <members>} |
| `chat_send`   | `chat/send`   | `chat/message` {"room","from","text"} to `chat:R`, then {"delivered": n} |
| `chat_online` | `chat/online` | {"room": R, "users": <members>} |

Built against the world switchyard:handler/with-tags (grant: `tags`) by build.sh.
"""

import switchyard as sy
from switchyard import Handler  # noqa: F401  (the export componentize-py looks for)

_ROOM_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def valid_room(room):
    """1 to 64 characters from [A-Za-z0-9_.-]."""
    return isinstance(room, str) and 1 <= len(room) <= 64 and all(c in _ROOM_CHARS for c in room)


def parse(req):
    """The request's data as a dict with a valid "room": (room, data), else None."""
    try:
        data = req.json()
    except sy.BadJson:
        return None
    if not isinstance(data, dict):
        return None
    room = data.get("room")
    return (room, data) if valid_room(room) else None


def room_reply(room, users):
    """{"room": room, "users": <users>} with `users` (the host's JSON) passed through; a valid
    room needs no escaping."""
    return '{"room":"%s","users":%s}' % (room, users)


def reject(req, msg):
    """Answers the caller with an error frame for its own event; the event succeeds."""
    try:
        sy.send_error(req.event, msg)
    except sy.Error:
        pass


@sy.handler
def chat_join(req):
    parsed = parse(req)
    if parsed is None:
        return reject(req, "invalid room")
    room, _ = parsed
    tag = "chat:" + room
    try:
        sy.join_tag(tag)
        users = sy.tag_members_raw(tag)
        sy.send_success_raw("chat/join", room_reply(room, users))
    except sy.Denied:
        reject(req, "denied")


@sy.handler
def chat_send(req):
    parsed = parse(req)
    if parsed is None:
        return reject(req, "invalid room")
    room, data = parsed
    text = data.get("text")
    if not isinstance(text, str):
        return reject(req, "invalid text")
    message = {"room": room, "from": req.user_id, "text": text}
    try:
        delivered = sy.send_to_tag("chat:" + room, "chat/message", message)
        sy.send_success_raw("chat/send", '{"delivered":%d}' % delivered)
    except sy.Denied:
        reject(req, "denied")


@sy.handler
def chat_online(req):
    parsed = parse(req)
    if parsed is None:
        return reject(req, "invalid room")
    room, _ = parsed
    try:
        users = sy.tag_members_raw("chat:" + room)
        sy.send_success_raw("chat/online", room_reply(room, users))
    except sy.Denied:
        reject(req, "denied")
