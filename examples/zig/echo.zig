//! The reference `echo` module (docs/HANDLERS.md), in Zig.
const sy = @import("switchyard");

comptime {
    sy.exportModule(.{ .echo = echo, .fail = fail });
}

/// send_success(<request event>, <request data>): the data's raw JSON,
/// unchanged ("null" when the frame had none). Returns 0.
fn echo(req: sy.Request) void {
    sy.sendSuccess(req.event, req.data) catch {};
}

/// Sends nothing; the host answers "handler failed with status 3".
fn fail(_: sy.Request) i32 {
    return 3;
}
