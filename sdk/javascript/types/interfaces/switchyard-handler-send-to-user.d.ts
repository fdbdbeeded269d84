/** @module Interface switchyard:handler/send-to-user@1.0.0 **/
/**
 * Sends the success frame to every connection of `user-id`; returns how many.
 */
export function sendToUser(userId: string, event: string, data: string): number;
export type Status = import('./switchyard-handler-types.js').Status;
