// Interface `switchyard:handler/send-to-user` (grant `capabilities = ["send_to_user"]`).
import { sendToUser as hostSendToUser } from 'switchyard:handler/send-to-user@1.0.0';
import { hostCall, toJson } from './switchyard.js';

/** Sends a success frame with `rawJson` to every connection of `userId`; returns how many. */
export function sendToUserRaw(userId, event, rawJson) {
  return hostCall(hostSendToUser, userId, event, rawJson);
}

/** Sends a success frame with `data` (as JSON) to every connection of `userId`; returns how many. */
export function sendToUser(userId, event, data) {
  return hostCall(hostSendToUser, userId, event, toJson(data));
}
