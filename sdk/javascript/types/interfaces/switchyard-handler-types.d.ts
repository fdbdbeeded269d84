/** @module Interface switchyard:handler/types@1.0.0 **/
/**
 * Why a host call failed. The cases are ABI v1's negative status codes in order:
 * `bad-pointer` = -1, `bad-utf8` = -2, `bad-json` = -3, `denied` = -4, `limit` = -5,
 * `invalid` = -6. `bad-pointer` and `bad-utf8` are never returned to a component (the
 * canonical ABI traps on an out-of-bounds string or invalid UTF-8 before the host sees
 * it); they are kept so that the numbering matches ABI v1.
 * # Variants
 * 
 * ## `"bad-pointer"`
 * 
 * -1: a (ptr, len) pair outside guest memory (core modules only).
 * ## `"bad-utf8"`
 * 
 * -2: a string that is not UTF-8 (core modules only).
 * ## `"bad-json"`
 * 
 * -3: a `data` argument that is not one complete JSON value.
 * ## `"denied"`
 * 
 * -4: not granted by the module's manifest entry (a tag outside its `tags` patterns).
 * ## `"limit"`
 * 
 * -5: this call's send budget (`max_sends` / `max_send_bytes`) is used up, or the
 * client is in too many tags.
 * ## `"invalid"`
 * 
 * -6: another invalid argument (an empty tag, ...).
 */
export type Status = 'bad-pointer' | 'bad-utf8' | 'bad-json' | 'denied' | 'limit' | 'invalid';
/**
 * One client frame `{"event": E, "data": D}` being handled.
 */
export interface Request {
  /**
   * The frame's `event`, e.g. `chat/join`.
   */
  event: string,
  /**
   * The raw JSON text of the frame's `data`, exactly as the client sent it; `null`
   * when the frame had none.
   */
  data: string,
  /**
   * The calling connection's id.
   */
  clientId: string,
  /**
   * The calling client's user id (the JWT `sub`); empty for an anonymous guest.
   */
  userId: string,
}
/**
 * Log levels of `host.log`.
 * # Variants
 * 
 * ## `"trace"`
 * 
 * ## `"debug"`
 * 
 * ## `"info"`
 * 
 * ## `"warn"`
 * 
 * ## `"error"`
 */
export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
