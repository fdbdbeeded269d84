//! The reference `chat` module (docs/HANDLERS.md), in Zig.
//!
//! Room R lives in tag "chat:R". A room name is 1..64 characters from
//! [A-Za-z0-9_.-]; data must be an object whose "room" is such a string, else
//! the reply is send_error(event, "invalid room"). ERR_DENIED from a tag call
//! becomes send_error(event, "denied"); other host errors fail the call with
//! the host's status.
const std = @import("std");
const sy = @import("switchyard");

comptime {
    sy.exportModule(.{
        .chat_join = join,
        .chat_send = send,
        .chat_online = online,
    });
}

const Room = struct {
    name: []const u8,
    tag: []const u8,
};

fn validRoom(name: []const u8) bool {
    if (name.len < 1 or name.len > 64) return false;
    for (name) |c| switch (c) {
        'a'...'z', 'A'...'Z', '0'...'9', '_', '.', '-' => {},
        else => return false,
    };
    return true;
}

/// The fields of `data` the chat reads. `StringField` accepts any JSON value,
/// so a wrong type is told apart from a data that is not an object.
const Data = struct {
    room: sy.StringField = .missing,
    text: sy.StringField = .missing,
};

/// The request's data and room, or null after replying "invalid room".
fn readRoom(req: sy.Request) !?struct { Data, Room } {
    const data = req.dataAs(Data) catch |e| switch (e) {
        error.OutOfMemory => return e,
        else => {
            // data is not an object
            try sy.sendError(req.event, "invalid room");
            return null;
        },
    };
    const name = data.room.get() orelse "";
    if (!validRoom(name)) {
        try sy.sendError(req.event, "invalid room");
        return null;
    }
    const tag = try std.mem.concat(sy.allocator, u8, &.{ "chat:", name });
    return .{ data, .{ .name = name, .tag = tag } };
}

/// A failed tag call: ERR_DENIED is answered with "denied", the rest fail.
fn hostFailed(req: sy.Request, err: anyerror) !void {
    if (err == error.Denied) return sy.sendError(req.event, "denied");
    return err;
}

fn join(req: sy.Request) !void {
    _, const room = try readRoom(req) orelse return;
    sy.joinTag(room.tag) catch |e| return hostFailed(req, e);
    const users = sy.tagMembers(sy.allocator, room.tag) catch |e| return hostFailed(req, e);
    try sy.sendSuccessJson("chat/join", .{ .room = room.name, .users = sy.RawJson{ .text = users } });
}

fn online(req: sy.Request) !void {
    _, const room = try readRoom(req) orelse return;
    const users = sy.tagMembers(sy.allocator, room.tag) catch |e| return hostFailed(req, e);
    try sy.sendSuccessJson("chat/online", .{ .room = room.name, .users = sy.RawJson{ .text = users } });
}

fn send(req: sy.Request) !void {
    const data, const room = try readRoom(req) orelse return;
    const text = data.text.get() orelse return sy.sendError(req.event, "invalid text");

    const delivered = sy.sendToTagJson(room.tag, "chat/message", .{
        .room = room.name,
        .from = req.user_id,
        .text = text,
    }) catch |e| return hostFailed(req, e);
    try sy.sendSuccessJson("chat/send", .{ .delivered = delivered });
}
