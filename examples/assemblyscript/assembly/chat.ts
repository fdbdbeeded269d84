// Module `chat` (docs/HANDLERS.md): the reference chat handler.
//
// The tag of room R is "chat:R". A room name is 1 to 64 characters from
// [A-Za-z0-9_.-]; `data` must be an object whose "room" is such a string, else
// the handler replies send_error(event, "invalid room") and returns 0. A host
// ERR_DENIED (-4) from any tag call makes it reply send_error(event, "denied")
// and return 0.

// AssemblyScript exports only what the entry file exports: re-export the ABI pieces.
export { alloc, switchyard_abi_v1 } from "switchyard-sdk-as";

import {
  Request,
  ERR_DENIED,
  STATUS_BAD_REQUEST,
  joinTag,
  jsonIsString,
  jsonRawField,
  jsonString,
  jsonStringField,
  lastStatus,
  sendError,
  sendSuccess,
  sendToTag,
  tagMembers,
} from "switchyard-sdk-as";

const MAX_ROOM_LEN = 64;

function isRoomChar(c: i32): bool {
  return (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) ||      // A-Z
    (c >= 0x30 && c <= 0x39) ||      // 0-9
    c == 0x5f || c == 0x2e || c == 0x2d; // _ . -
}

/** The request's room, or null when `data` is not an object with a valid "room" string. */
function roomOf(req: Request): string | null {
  const room = jsonStringField(req.data, "room");
  if (room === null) return null;
  const n = room.length; // all valid characters are ASCII: UTF-16 units = characters
  if (n < 1 || n > MAX_ROOM_LEN) return null;
  for (let i = 0; i < n; i++) {
    if (!isRoomChar(room.charCodeAt(i))) return null;
  }
  return room;
}

/**
 * A tag call failed with host status `status` (< 0). ERR_DENIED becomes the
 * "denied" error reply and status 0; any other failure (not expected for these
 * calls) fails the event with that status ("handler failed with status <n>").
 */
function tagCallFailed(event: string, status: i32): i32 {
  if (status == ERR_DENIED) {
    sendError(event, "denied");
    return 0;
  }
  return status;
}

function invalidRoom(event: string): i32 {
  sendError(event, "invalid room");
  return 0;
}

// {"room": R, "users": <members>} — <members> is tag_members' JSON array, passed through.
function roomUsers(room: string, members: string): string {
  return "{\"room\":" + jsonString(room) + ",\"users\":" + members + "}";
}

/** chat/join: join "chat:R", then reply {"room": R, "users": <members>}. */
export function chat_join(ptr: i32, len: i32): i32 {
  const req = Request.parse(ptr, len);
  if (req === null) return STATUS_BAD_REQUEST;
  const room = roomOf(req);
  if (room === null) return invalidRoom(req.event);
  const tag = "chat:" + room;

  const joined = joinTag(tag);
  if (joined < 0) return tagCallFailed(req.event, joined);
  const members = tagMembers(tag);
  if (members === null) return tagCallFailed(req.event, lastStatus());

  sendSuccess("chat/join", roomUsers(room, members));
  return 0;
}

/** chat/send: relay {"room", "from", "text"} to "chat:R" as chat/message, reply {"delivered": n}. */
export function chat_send(ptr: i32, len: i32): i32 {
  const req = Request.parse(ptr, len);
  if (req === null) return STATUS_BAD_REQUEST;
  const room = roomOf(req);
  if (room === null) return invalidRoom(req.event);

  const text = jsonRawField(req.data, "text"); // raw JSON, passed through unchanged
  if (text === null || !jsonIsString(text)) {
    sendError(req.event, "invalid text");
    return 0;
  }

  const message = "{\"room\":" + jsonString(room) +
    ",\"from\":" + jsonString(req.userId) +
    ",\"text\":" + text + "}";
  const n = sendToTag("chat:" + room, "chat/message", message);
  if (n < 0) return tagCallFailed(req.event, n);

  sendSuccess("chat/send", "{\"delivered\":" + n.toString() + "}");
  return 0;
}

/** chat/online: reply {"room": R, "users": <members of chat:R>}. */
export function chat_online(ptr: i32, len: i32): i32 {
  const req = Request.parse(ptr, len);
  if (req === null) return STATUS_BAD_REQUEST;
  const room = roomOf(req);
  if (room === null) return invalidRoom(req.event);

  const members = tagMembers("chat:" + room);
  if (members === null) return tagCallFailed(req.event, lastStatus());

  sendSuccess("chat/online", roomUsers(room, members));
  return 0;
}
