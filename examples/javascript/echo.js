// The reference `echo` module in JavaScript (docs/HANDLERS.md).
//
// * `echo` replies sendSuccess(<request event>, <request data>): the data's raw JSON passed
//   through unchanged (`null` when the frame had none). Routed as `echo` and as hotgo's
//   `admin/addons/hgexample/testMessage`.
// * `fail` sends nothing and fails with status 3 (`handler failed with status 3`).
//
// Built against the world switchyard:handler/base (no grant needed) by build.sh.

import { handlers, sendSuccessRaw, HandlerError, SwitchyardError } from '../../sdk/javascript/switchyard.js';

export const handler = handlers({
  echo(req) {
    // Always succeeds: a failed reply (which a conforming host never produces here) is not
    // turned into a second, error reply.
    try {
      sendSuccessRaw(req.event, req.data);
    } catch (e) {
      if (!(e instanceof SwitchyardError)) throw e;
    }
  },

  fail() {
    throw new HandlerError(3);
  },
});
