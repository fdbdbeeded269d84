/** @module Interface switchyard:handler/tags@1.0.0 **/
/**
 * Adds the calling client to `tag` (idempotent).
 */
export function joinTag(tag: string): void;
/**
 * Removes the calling client from `tag` (idempotent).
 */
export function quitTag(tag: string): void;
/**
 * Sends the success frame `{"event":event,"code":0,"data":data}` to every connection in
 * `tag`; returns how many it was queued to.
 */
export function sendToTag(tag: string, event: string, data: string): number;
/**
 * The distinct user ids online in `tag` as a JSON array, sorted ascending
 * (`["alice","bob"]`; guests are not listed).
 */
export function tagMembers(tag: string): string;
export type Status = import('./switchyard-handler-types.js').Status;
