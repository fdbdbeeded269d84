// Interface `switchyard:handler/send-to-all` (grant `capabilities = ["send_to_all"]`).
import { sendToAll as hostSendToAll } from 'switchyard:handler/send-to-all@1.0.0';
import { hostCall, toJson } from './switchyard.js';

/** Sends a success frame with `rawJson` to every connection; returns how many. */
export function sendToAllRaw(event, rawJson) {
  return hostCall(hostSendToAll, event, rawJson);
}

/** Sends a success frame with `data` (as JSON) to every connection; returns how many. */
export function sendToAll(event, data) {
  return hostCall(hostSendToAll, event, toJson(data));
}
