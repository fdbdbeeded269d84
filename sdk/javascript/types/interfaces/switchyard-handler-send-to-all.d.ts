/** @module Interface switchyard:handler/send-to-all@1.0.0 **/
/**
 * Sends the success frame to every connection; returns how many.
 */
export function sendToAll(event: string, data: string): number;
export type Status = import('./switchyard-handler-types.js').Status;
