// Interface `switchyard:handler/send-to-client` (grant `capabilities = ["send_to_client"]`).
import { sendToClient as hostSendToClient } from 'switchyard:handler/send-to-client@1.0.0';
import { hostCall, toJson } from './switchyard.js';

/** Sends a success frame with `rawJson` to the connection `clientId`; returns 0 or 1. */
export function sendToClientRaw(clientId, event, rawJson) {
  return hostCall(hostSendToClient, clientId, event, rawJson);
}

/** Sends a success frame with `data` (as JSON) to the connection `clientId`; returns 0 or 1. */
export function sendToClient(clientId, event, data) {
  return hostCall(hostSendToClient, clientId, event, toJson(data));
}
