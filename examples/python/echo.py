"""The reference `echo` module in Python (docs/HANDLERS.md).

* `echo` replies send_success(<request event>, <request data>): the data's raw JSON passed
  through unchanged (`null` when the frame had none). Routed as `echo` and as hotgo's
  `admin/addons/hgexample/testMessage`.
* `fail` sends nothing and fails with status 3 (`handler failed with status 3`).

Built against the world switchyard:handler/base (no grant needed) by build.sh.
"""

import switchyard as sy
from switchyard import Handler  # noqa: F401  (the export componentize-py looks for)


@sy.handler
def echo(req):
    # Always succeeds: a failed reply (which a conforming host never produces here) is not
    # turned into a second, error reply.
    try:
        sy.send_success_raw(req.event, req.data)
    except sy.Error:
        pass


@sy.handler
def fail(req):
    raise sy.HandlerError(3)
