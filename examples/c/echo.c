/* The reference `echo` module (docs/HANDLERS.md), in C. */
#include "switchyard.h"

SWITCHYARD_ABI_V1();

/* echo: send_success(<request event>, <request data>), data passed through
 * byte for byte ("null" when the frame had none). Returns 0. */
SWITCHYARD_HANDLER(echo) {
    (void)sy_reply(req->event, req->data);
    return 0;
}

/* fail: sends nothing; the host answers "handler failed with status 3". */
SWITCHYARD_HANDLER(fail) {
    (void)req;
    return 3;
}
