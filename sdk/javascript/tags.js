// Interface `switchyard:handler/tags` (grant `tags = ["pattern", ...]`): the calling client's
// tags and sends to a tag. Import this module only from a component whose world imports
// switchyard:handler/tags (e.g. the `with-tags` world); every call on a tag outside the
// module's patterns throws `Denied`.

import { joinTag as hostJoinTag, quitTag as hostQuitTag, sendToTag as hostSendToTag, tagMembers as hostTagMembers } from 'switchyard:handler/tags@1.0.0';
import { hostCall, toJson } from './switchyard.js';

/** Adds the calling client to `tag` (idempotent). */
export function joinTag(tag) {
  hostCall(hostJoinTag, tag);
}

/** Removes the calling client from `tag` (idempotent). */
export function quitTag(tag) {
  hostCall(hostQuitTag, tag);
}

/** Sends a success frame with `rawJson` (JSON text) to every connection in `tag`; returns how many. */
export function sendToTagRaw(tag, event, rawJson) {
  return hostCall(hostSendToTag, tag, event, rawJson);
}

/** Sends a success frame with `data` (serialised to JSON) to every connection in `tag`; returns how many. */
export function sendToTag(tag, event, data) {
  return hostCall(hostSendToTag, tag, event, toJson(data));
}

/** The distinct user ids online in `tag` as JSON text (a sorted array). */
export function tagMembersRaw(tag) {
  return hostCall(hostTagMembers, tag);
}

/** The distinct user ids online in `tag`, sorted. */
export function tagMembers(tag) {
  return JSON.parse(hostCall(hostTagMembers, tag));
}
