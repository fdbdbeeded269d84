// The reference `chat` module in JavaScript (docs/HANDLERS.md): rooms on top of tags.
//
// Room R is the tag `chat:R`. Every handler first reads `data.room`, which must be a string
// of 1 to 64 characters from [A-Za-z0-9_.-]; otherwise it answers sendError(event, "invalid
// room") and succeeds. `Denied` from any tag call (the manifest does not grant `chat:*`) is
// answered with sendError(event, "denied"). Any other host error fails the event with its
// (negative) status.
//
// | export        | event         | reply |
// |---------------|---------------|-------|
// | `chat_join`   | `chat/join`   | joins `chat:R`, then {"room": R, "users": <members>} |
// | `chat_send`   | `chat/send`   | `chat/message` {"room","from","text"} to `chat:R`, then {"delivered": n} |
// | `chat_online` | `chat/online` | {"room": R, "users": <members>} |
//
// Built against the world switchyard:handler/with-tags (grant: `tags`) by build.sh.

import { handlers, sendSuccessRaw, sendError, Denied, SwitchyardError, BadJson } from '../../sdk/javascript/switchyard.js';
import { joinTag, sendToTag, tagMembersRaw } from '../../sdk/javascript/tags.js';

const ROOM = /^[A-Za-z0-9_.-]{1,64}$/;

/** The request's data as an object with a valid "room": `{ room, data }`, else null. */
function parse(req) {
  let data;
  try {
    data = req.json();
  } catch (e) {
    if (e instanceof BadJson) return null;
    throw e;
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return null;
  const room = data.room;
  return typeof room === 'string' && ROOM.test(room) ? { room, data } : null;
}

/** {"room": room, "users": <users>} with `users` (the host's JSON) passed through. */
function roomReply(room, users) {
  return `{"room":"${room}","users":${users}}`;
}

/** Answers the caller with an error frame for its own event; the event succeeds. */
function reject(req, msg) {
  try {
    sendError(req.event, msg);
  } catch (e) {
    if (!(e instanceof SwitchyardError)) throw e;
  }
}

/** Runs the host calls of a handler: `Denied` becomes a "denied" error frame. */
function guard(req, calls) {
  try {
    calls();
  } catch (e) {
    if (e instanceof Denied) return reject(req, 'denied');
    throw e;
  }
}

export const handler = handlers({
  chat_join(req) {
    const parsed = parse(req);
    if (parsed === null) return reject(req, 'invalid room');
    const tag = `chat:${parsed.room}`;
    guard(req, () => {
      joinTag(tag);
      sendSuccessRaw('chat/join', roomReply(parsed.room, tagMembersRaw(tag)));
    });
  },

  chat_send(req) {
    const parsed = parse(req);
    if (parsed === null) return reject(req, 'invalid room');
    const { room, data } = parsed;
    if (typeof data.text !== 'string') return reject(req, 'invalid text');
    const message = { room, from: req.userId, text: data.text };
    guard(req, () => {
      const delivered = sendToTag(`chat:${room}`, 'chat/message', message);
      sendSuccessRaw('chat/send', `{"delivered":${delivered}}`);
    });
  },

  chat_online(req) {
    const parsed = parse(req);
    if (parsed === null) return reject(req, 'invalid room');
    guard(req, () => {
      sendSuccessRaw('chat/online', roomReply(parsed.room, tagMembersRaw(`chat:${parsed.room}`)));
    });
  },
});
