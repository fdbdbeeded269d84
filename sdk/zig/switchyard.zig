//! Zig SDK for Switchyard handler ABI v1 (docs/ABI.md). Targets Zig 0.15.x and
//! `wasm32-freestanding`.
//!
//! ```zig
//! const sy = @import("switchyard");
//!
//! comptime {
//!     sy.exportModule(.{ .echo = echo }); // alloc, switchyard_abi_v1, switchyard_reset, "echo"
//! }
//!
//! fn echo(req: sy.Request) !void {
//!     try sy.sendSuccess(req.event, req.data);
//! }
//! ```
//!
//! A handler is `fn (sy.Request) R` where R is `void`, an integer status, or an
//! error union of either. Host failures are Zig errors (`sy.Error`); an error
//! escaping a handler becomes its status (see `statusOf`).
//!
//! Memory: `sy.allocator` is a bump allocator over the module's linear memory.
//! It backs the `alloc` export too. Nothing needs freeing: by default every
//! event runs in a fresh instance; with `instance = "reuse"` the host calls the
//! `switchyard_reset` export after each event, which frees everything the event
//! allocated (see `resetAllocator`). Globals keep their values across events
//! (and users) in that mode; only allocator state is reset.

const std = @import("std");
const builtin = @import("builtin");
const Allocator = std.mem.Allocator;

pub const abi_version: u32 = 1;

// ---------------------------------------------------------------------------
// Status codes and errors
// ---------------------------------------------------------------------------

/// The host's negative status codes.
pub const Status = enum(i32) {
    bad_pointer = -1,
    bad_utf8 = -2,
    bad_json = -3,
    denied = -4,
    limit = -5,
    invalid = -6,
    _,
};

/// Host failures, one per status code (`Unknown` for a code this SDK predates).
pub const Error = error{
    /// ERR_BAD_POINTER: a (ptr, len) pair falls outside guest memory.
    BadPointer,
    /// ERR_BAD_UTF8: a string is not valid UTF-8.
    BadUtf8,
    /// ERR_BAD_JSON: a data argument is not valid JSON.
    BadJson,
    /// ERR_DENIED: the manifest does not grant this (e.g. a tag outside `tags`).
    Denied,
    /// ERR_LIMIT: this call used up its send budget.
    Limit,
    /// ERR_INVALID: another invalid argument.
    Invalid,
    /// A negative status this SDK does not know.
    Unknown,
};

/// Maps a host return value to its count/length, or to an `Error`.
pub fn check(rc: i32) Error!u32 {
    if (rc >= 0) return @intCast(rc);
    return switch (rc) {
        -1 => error.BadPointer,
        -2 => error.BadUtf8,
        -3 => error.BadJson,
        -4 => error.Denied,
        -5 => error.Limit,
        -6 => error.Invalid,
        else => error.Unknown,
    };
}

/// Status returned by an exported handler whose request bytes do not parse.
pub const status_bad_request: i32 = 1;

/// The status an error escaping a handler turns into: the host's own code
/// for an `Error` (e.g. -5 for `error.Limit`), 1 for anything else. The client
/// sees "handler failed with status N".
pub fn statusOf(err: anyerror) i32 {
    return switch (err) {
        error.BadPointer => -1,
        error.BadUtf8 => -2,
        error.BadJson => -3,
        error.Denied => -4,
        error.Limit => -5,
        error.Invalid => -6,
        else => 1,
    };
}

// ---------------------------------------------------------------------------
// Raw host imports (module "switchyard"). Only the ones a module calls are
// imported.
// ---------------------------------------------------------------------------

pub const raw = struct {
    pub extern "switchyard" fn send_success(event_ptr: [*]const u8, event_len: usize, data_ptr: [*]const u8, data_len: usize) i32;
    pub extern "switchyard" fn send_error(event_ptr: [*]const u8, event_len: usize, msg_ptr: [*]const u8, msg_len: usize) i32;
    pub extern "switchyard" fn send_to_client(client_ptr: [*]const u8, client_len: usize, event_ptr: [*]const u8, event_len: usize, data_ptr: [*]const u8, data_len: usize) i32;
    pub extern "switchyard" fn send_to_user(user_ptr: [*]const u8, user_len: usize, event_ptr: [*]const u8, event_len: usize, data_ptr: [*]const u8, data_len: usize) i32;
    pub extern "switchyard" fn send_to_tag(tag_ptr: [*]const u8, tag_len: usize, event_ptr: [*]const u8, event_len: usize, data_ptr: [*]const u8, data_len: usize) i32;
    pub extern "switchyard" fn send_to_all(event_ptr: [*]const u8, event_len: usize, data_ptr: [*]const u8, data_len: usize) i32;
    pub extern "switchyard" fn join_tag(tag_ptr: [*]const u8, tag_len: usize) i32;
    pub extern "switchyard" fn quit_tag(tag_ptr: [*]const u8, tag_len: usize) i32;
    pub extern "switchyard" fn tag_members(tag_ptr: [*]const u8, tag_len: usize, buf_ptr: [*]u8, buf_cap: usize) i32;
    pub extern "switchyard" fn client_id(buf_ptr: [*]u8, buf_cap: usize) i32;
    pub extern "switchyard" fn user_id(buf_ptr: [*]u8, buf_cap: usize) i32;
    pub extern "switchyard" fn claims(buf_ptr: [*]u8, buf_cap: usize) i32;
    pub extern "switchyard" fn log(level: i32, msg_ptr: [*]const u8, msg_len: usize) i32;
};

// ---------------------------------------------------------------------------
// Wrappers
// ---------------------------------------------------------------------------

/// Replies `{"event":E,"code":0,"data":D}` to the calling client. `data` must
/// be JSON text; an empty slice omits `data`.
pub fn sendSuccess(event: []const u8, data: []const u8) Error!void {
    _ = try check(raw.send_success(event.ptr, event.len, data.ptr, data.len));
}

/// Replies `{"event":E,"code":-1,"errorMsg":M}`; `msg` is plain text.
pub fn sendError(event: []const u8, msg: []const u8) Error!void {
    _ = try check(raw.send_error(event.ptr, event.len, msg.ptr, msg.len));
}

/// Sends to one connection; returns how many it was queued to (0 or 1).
/// Needs capability `send_to_client`.
pub fn sendToClient(client: []const u8, event: []const u8, data: []const u8) Error!u32 {
    return check(raw.send_to_client(client.ptr, client.len, event.ptr, event.len, data.ptr, data.len));
}

/// Sends to every connection of a user. Needs capability `send_to_user`.
pub fn sendToUser(user: []const u8, event: []const u8, data: []const u8) Error!u32 {
    return check(raw.send_to_user(user.ptr, user.len, event.ptr, event.len, data.ptr, data.len));
}

/// Sends to every connection in a tag. The tag must match the module's `tags`.
pub fn sendToTag(tag: []const u8, event: []const u8, data: []const u8) Error!u32 {
    return check(raw.send_to_tag(tag.ptr, tag.len, event.ptr, event.len, data.ptr, data.len));
}

/// Sends to every connection. Needs capability `send_to_all`.
pub fn sendToAll(event: []const u8, data: []const u8) Error!u32 {
    return check(raw.send_to_all(event.ptr, event.len, data.ptr, data.len));
}

/// Adds the calling client to a tag (idempotent).
pub fn joinTag(tag: []const u8) Error!void {
    _ = try check(raw.join_tag(tag.ptr, tag.len));
}

/// Removes the calling client from a tag.
pub fn quitTag(tag: []const u8) Error!void {
    _ = try check(raw.quit_tag(tag.ptr, tag.len));
}

/// The distinct user ids online in a tag, sorted, as JSON array text
/// (`["alice","bob"]`), allocated with `gpa`.
pub fn tagMembers(gpa: Allocator, tag: []const u8) (Error || Allocator.Error)![]u8 {
    const Ctx = struct {
        tag: []const u8,
        fn call(c: @This(), buf: []u8) i32 {
            return raw.tag_members(c.tag.ptr, c.tag.len, buf.ptr, buf.len);
        }
    };
    return getAlloc(gpa, Ctx{ .tag = tag });
}

/// The calling client's connection id.
pub fn clientId(gpa: Allocator) (Error || Allocator.Error)![]u8 {
    return getAlloc(gpa, Getter(raw.client_id){});
}

/// The calling client's user id (`""` for a guest). `Request.user_id` holds
/// the same value without a host call.
pub fn userId(gpa: Allocator) (Error || Allocator.Error)![]u8 {
    return getAlloc(gpa, Getter(raw.user_id){});
}

/// The verified JWT claims as JSON object text (`{}` for a guest). Needs
/// capability `claims`.
pub fn claims(gpa: Allocator) (Error || Allocator.Error)![]u8 {
    return getAlloc(gpa, Getter(raw.claims){});
}

fn Getter(comptime f: fn ([*]u8, usize) callconv(.c) i32) type {
    return struct {
        fn call(_: @This(), buf: []u8) i32 {
            return f(buf.ptr, buf.len);
        }
    };
}

/// Getter protocol: the host returns the full length and writes nothing when
/// it does not fit, so try a guess, then the exact length (the value may grow
/// between calls, hence the loop).
fn getAlloc(gpa: Allocator, ctx: anytype) (Error || Allocator.Error)![]u8 {
    var cap: usize = 128;
    var attempts: u8 = 0;
    while (attempts < 4) : (attempts += 1) {
        const buf = try gpa.alloc(u8, cap);
        const n = try check(ctx.call(buf));
        if (n <= cap) {
            if (n == 0 or gpa.resize(buf, n)) return buf[0..n];
            const out = try gpa.dupe(u8, buf[0..n]);
            gpa.free(buf);
            return out;
        }
        gpa.free(buf);
        cap = n;
    }
    return error.Limit;
}

pub const LogLevel = enum(i32) { trace = 0, debug = 1, info = 2, warn = 3, err = 4 };

/// Logs through the host's `tracing`, prefixed with the module name.
pub fn log(level: LogLevel, msg: []const u8) void {
    _ = raw.log(@intFromEnum(level), msg.ptr, msg.len);
}

/// `log` with `std.fmt` formatting (allocates from `allocator`).
pub fn logf(level: LogLevel, comptime fmt: []const u8, args: anytype) void {
    const msg = std.fmt.allocPrint(allocator, fmt, args) catch return;
    log(level, msg);
}

/// Plug into `std.log` from your root file:
/// `pub const std_options: std.Options = .{ .logFn = sy.logFn };`
pub fn logFn(
    comptime level: std.log.Level,
    comptime scope: @Type(.enum_literal),
    comptime format: []const u8,
    args: anytype,
) void {
    const prefix = if (scope == .default) "" else "(" ++ @tagName(scope) ++ ") ";
    const l: LogLevel = switch (level) {
        .err => .err,
        .warn => .warn,
        .info => .info,
        .debug => .debug,
    };
    logf(l, prefix ++ format, args);
}

// ---------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------

/// One event, as laid out by the host (see "The request" in docs/ABI.md).
/// All slices point into the request bytes.
pub const Request = struct {
    version: u32,
    /// The client's "event".
    event: []const u8,
    /// Raw JSON text of the frame's "data" (`null` when absent).
    data: []const u8,
    /// The calling connection's id.
    client_id: []const u8,
    /// The caller's user id, `""` for an anonymous guest.
    user_id: []const u8,

    pub const ParseError = error{BadRequest};

    pub fn parse(bytes: []const u8) ParseError!Request {
        if (bytes.len < 20) return error.BadRequest;
        const version = std.mem.readInt(u32, bytes[0..4], .little);
        if (version != abi_version) return error.BadRequest;
        var lens: [4]u32 = undefined;
        var total: u64 = 20;
        for (&lens, 0..) |*l, i| {
            l.* = std.mem.readInt(u32, bytes[4 + 4 * i ..][0..4], .little);
            total += l.*;
        }
        if (total > bytes.len) return error.BadRequest;
        var at: usize = 20;
        var fields: [4][]const u8 = undefined;
        for (&fields, lens) |*f, l| {
            f.* = bytes[at..][0..l];
            at += l;
        }
        return .{
            .version = version,
            .event = fields[0],
            .data = fields[1],
            .client_id = fields[2],
            .user_id = fields[3],
        };
    }

    /// `data` as a dynamic `std.json.Value` (strings may point into the request;
    /// duplicate keys: last wins).
    pub fn dataValue(self: Request) std.json.ParseError(std.json.Scanner)!std.json.Value {
        return std.json.parseFromSliceLeaky(std.json.Value, allocator, self.data, .{
            .duplicate_field_behavior = .use_last,
        });
    }

    /// `data` parsed into `T` (unknown fields ignored).
    pub fn dataAs(self: Request, comptime T: type) std.json.ParseError(std.json.Scanner)!T {
        return std.json.parseFromSliceLeaky(T, allocator, self.data, .{
            .ignore_unknown_fields = true,
            .duplicate_field_behavior = .use_last,
        });
    }
};

/// A field type for `Request.dataAs` that accepts any JSON value, so a
/// handler can tell "missing" from "present but not a string" from a string
/// without failing the whole parse:
///
/// ```zig
/// const Data = struct { room: sy.StringField = .missing };
/// const data = try req.dataAs(Data); // error: data is not an object
/// const room = data.room.get() orelse return sy.sendError(req.event, "invalid room");
/// ```
pub const StringField = union(enum) {
    /// The key is absent (use as the field's default).
    missing,
    /// The key is present with a value that is not a string.
    other,
    /// The key holds a string (unescaped).
    string: []const u8,

    pub fn get(self: StringField) ?[]const u8 {
        return switch (self) {
            .string => |s| s,
            else => null,
        };
    }

    pub fn jsonParse(gpa: Allocator, source: anytype, options: std.json.ParseOptions) !StringField {
        if (try source.peekNextTokenType() != .string) {
            try source.skipValue();
            return .other;
        }
        // Not innerParse([]const u8): that also accepts arrays of numbers and
        // so links in float parsing (~40 KiB of wasm).
        return switch (try source.nextAllocMax(gpa, options.allocate.?, options.max_value_len.?)) {
            inline .string, .allocated_string => |s| .{ .string = s },
            else => unreachable,
        };
    }
};

// ---------------------------------------------------------------------------
// JSON out
// ---------------------------------------------------------------------------

/// Serialises `value` with `std.json` into memory from `allocator`.
pub fn json(value: anytype) Allocator.Error![]u8 {
    return std.json.Stringify.valueAlloc(allocator, value, .{});
}

/// Embeds JSON text you already have (a host getter's output, a request's
/// raw field) in a value given to `json` / `std.json.Stringify`, unchanged.
pub const RawJson = struct {
    text: []const u8,

    pub fn jsonStringify(self: RawJson, jw: anytype) !void {
        try jw.beginWriteRaw();
        try jw.writer.writeAll(self.text);
        jw.endWriteRaw();
    }
};

/// `sendSuccess(event, json(value))`.
pub fn sendSuccessJson(event: []const u8, value: anytype) (Error || Allocator.Error)!void {
    return sendSuccess(event, try json(value));
}

/// `sendToTag(tag, event, json(value))`.
pub fn sendToTagJson(tag: []const u8, event: []const u8, value: anytype) (Error || Allocator.Error)!u32 {
    return sendToTag(tag, event, try json(value));
}

/// `sendToUser(user, event, json(value))`.
pub fn sendToUserJson(user: []const u8, event: []const u8, value: anytype) (Error || Allocator.Error)!u32 {
    return sendToUser(user, event, try json(value));
}

/// `sendToClient(client, event, json(value))`.
pub fn sendToClientJson(client: []const u8, event: []const u8, value: anytype) (Error || Allocator.Error)!u32 {
    return sendToClient(client, event, try json(value));
}

/// `sendToAll(event, json(value))`.
pub fn sendToAllJson(event: []const u8, value: anytype) (Error || Allocator.Error)!u32 {
    return sendToAll(event, try json(value));
}

// ---------------------------------------------------------------------------
// Bump allocator over linear memory
// ---------------------------------------------------------------------------

const page_size = 65536;
extern const __heap_base: u8; // provided by the wasm linker

var heap_top: usize = 0;

/// Returns `len` bytes aligned to `alignment`, growing memory as needed.
pub fn bumpAlloc(len: usize, alignment: usize) ?[*]u8 {
    if (heap_top == 0) heap_top = @intFromPtr(&__heap_base);
    const start = std.mem.alignForward(usize, heap_top, alignment);
    const end = std.math.add(usize, start, len) catch return null;
    if (!ensureMemory(end)) return null;
    heap_top = end;
    return @ptrFromInt(start);
}

fn ensureMemory(end: usize) bool {
    const have: u64 = @as(u64, @wasmMemorySize(0)) * page_size;
    if (end <= have) return true;
    const pages: usize = @intCast((end - have + page_size - 1) / page_size);
    return @wasmMemoryGrow(0, pages) >= 0;
}

fn vtAlloc(_: *anyopaque, len: usize, alignment: std.mem.Alignment, _: usize) ?[*]u8 {
    return bumpAlloc(len, alignment.toByteUnits());
}

fn vtResize(_: *anyopaque, memory: []u8, _: std.mem.Alignment, new_len: usize, _: usize) bool {
    const end = @intFromPtr(memory.ptr) + memory.len;
    if (end == heap_top) { // the latest allocation can move its end
        const new_end = @intFromPtr(memory.ptr) + new_len;
        if (!ensureMemory(new_end)) return false;
        heap_top = new_end;
        return true;
    }
    return new_len <= memory.len;
}

fn vtRemap(ctx: *anyopaque, memory: []u8, alignment: std.mem.Alignment, new_len: usize, ret: usize) ?[*]u8 {
    return if (vtResize(ctx, memory, alignment, new_len, ret)) memory.ptr else null;
}

fn vtFree(_: *anyopaque, memory: []u8, _: std.mem.Alignment, _: usize) void {
    if (@intFromPtr(memory.ptr) + memory.len == heap_top) heap_top = @intFromPtr(memory.ptr);
}

/// The module's allocator (bump; `free` only reclaims the latest allocation).
pub const allocator: Allocator = .{
    .ptr = undefined,
    .vtable = &.{ .alloc = vtAlloc, .resize = vtResize, .remap = vtRemap, .free = vtFree },
};

/// Frees everything `allocator` (and the `alloc` export) handed out: the next
/// allocation starts at `__heap_base` again. The `switchyard_reset` export calls
/// it between two events of a reused instance (`instance = "reuse"`); any slice
/// still pointing into that memory (from a global, say) is dangling afterwards.
pub fn resetAllocator() void {
    heap_top = 0;
}

// ---------------------------------------------------------------------------
// Exports
// ---------------------------------------------------------------------------

fn allocExport(len: usize) callconv(.c) usize {
    return @intFromPtr(bumpAlloc(len, 8) orelse return 0);
}

fn abiMarker() callconv(.c) void {}

fn resetExport() callconv(.c) void {
    resetAllocator();
}

/// Exports `alloc`, `switchyard_abi_v1` and `switchyard_reset` (run by the
/// host between events when the manifest says `instance = "reuse"`). Call from
/// a `comptime` block, once per module.
pub fn exportAbi() void {
    @export(&allocExport, .{ .name = "alloc" });
    @export(&abiMarker, .{ .name = "switchyard_abi_v1" });
    @export(&resetExport, .{ .name = "switchyard_reset" });
}

/// The `(ptr: i32, len: i32) -> i32` export wrapping handler `f`: parses the
/// request, calls `f`, and maps its result to a status.
pub fn Handler(comptime f: anytype) type {
    return struct {
        pub fn call(ptr: usize, len: usize) callconv(.c) i32 {
            if (ptr == 0) return status_bad_request;
            const bytes = @as([*]const u8, @ptrFromInt(ptr))[0..len];
            const req = Request.parse(bytes) catch return status_bad_request;
            return invoke(f, req);
        }
    };
}

inline fn invoke(comptime f: anytype, req: Request) i32 {
    const R = @typeInfo(@TypeOf(f)).@"fn".return_type.?;
    switch (@typeInfo(R)) {
        .void => {
            f(req);
            return 0;
        },
        .int, .comptime_int => return @intCast(f(req)),
        .error_union => |eu| {
            const v = f(req) catch |e| return statusOf(e);
            return switch (@typeInfo(eu.payload)) {
                .void => 0,
                .int, .comptime_int => @intCast(v),
                else => @compileError("handler must return void, an integer status, or an error union of those"),
            };
        },
        else => @compileError("handler must return void, an integer status, or an error union of those"),
    }
}

/// Exports handler `f` under `name`. Call from a `comptime` block.
pub fn exportHandler(comptime name: []const u8, comptime f: anytype) void {
    @export(&Handler(f).call, .{ .name = name });
}

/// Exports `alloc`, `switchyard_abi_v1`, `switchyard_reset` and one export per
/// field of `handlers` (`.{ .export_name = function, ... }`). Call from a
/// `comptime` block, once per module.
pub fn exportModule(comptime handlers: anytype) void {
    exportAbi();
    inline for (std.meta.fields(@TypeOf(handlers))) |field| {
        exportHandler(field.name, @field(handlers, field.name));
    }
}
