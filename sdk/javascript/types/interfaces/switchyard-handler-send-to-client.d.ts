/** @module Interface switchyard:handler/send-to-client@1.0.0 **/
/**
 * Sends the success frame to the connection `client-id`; returns how many (0 or 1).
 */
export function sendToClient(clientId: string, event: string, data: string): number;
export type Status = import('./switchyard-handler-types.js').Status;
