/** @module Interface switchyard:handler/host@1.0.0 **/
/**
 * Sends `{"event":event,"code":0,"data":data,"timestamp":T}` to the calling client.
 * `data` is JSON text (else `bad-json`); an empty string omits `data` from the frame.
 */
export function sendSuccess(event: string, data: string): void;
/**
 * Sends `{"event":event,"code":-1,"errorMsg":msg,"timestamp":T}` to the calling client.
 * `msg` is plain text (the host escapes it).
 */
export function sendError(event: string, msg: string): void;
/**
 * The calling connection's id (the request's `client-id`).
 */
export function clientId(): string;
/**
 * The calling client's user id (`""` for a guest).
 */
export function userId(): string;
/**
 * Logs `msg` through the host's log, prefixed with the module name.
 */
export function log(level: Level, msg: string): void;
export type Status = import('./switchyard-handler-types.js').Status;
export type Level = import('./switchyard-handler-types.js').Level;
