/** @module Interface switchyard:handler/handler@1.0.0 **/
/**
 * The handler names this component answers: the values a manifest route's `export` may
 * name. Called once when the module is loaded; a route naming anything else refuses the
 * manifest.
 */
export function exports(): Array<string>;
/**
 * Handles one event: `name` is the route's `export`, `req` the request. `ok` = handled
 * (the client gets whatever was sent); `err(n)` = failed, the client gets
 * `handler failed with status n`. Replies sent before a failure are delivered.
 */
export function handle(name: string, req: Request): void;
export type Request = import('./switchyard-handler-types.js').Request;
