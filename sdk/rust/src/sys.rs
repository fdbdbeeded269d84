//! The raw host imports of handler ABI v1 (module `switchyard`), exactly as `docs/ABI.md`
//! lists them: flat functions over `(ptr, len)` pairs of the guest's memory, each returning an
//! `i32` status (`>= 0` success, `< 0` an `ERR_*` code).
//!
//! Private to the SDK: use the safe wrappers at the crate root. Only the functions a module
//! actually calls end up as imports, so a handler that never calls `send_to_all` does not need
//! the `send_to_all` capability.
//!
//! Off WebAssembly (a native `cargo test` or `cargo check` of a handler crate) the same names
//! exist as stubs that panic, so the crate still builds and its pure parts can be unit-tested.

macro_rules! imports {
    ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> i32; )*) => {
        #[cfg(target_family = "wasm")]
        #[link(wasm_import_module = "switchyard")]
        unsafe extern "C" {
            $( $(#[$meta])* pub fn $name($($arg: $ty),*) -> i32; )*
        }

        $(
            $(#[$meta])*
            ///
            /// (Native stub: panics, there is no Switchyard host outside WebAssembly.)
            #[cfg(not(target_family = "wasm"))]
            pub unsafe fn $name($($arg: $ty),*) -> i32 {
                let _ = ($($arg,)*);
                panic!(concat!(
                    "switchyard host function `", stringify!($name),
                    "` is only available inside a wasm handler module"
                ))
            }
        )*
    };
}

imports! {
    /// Sends `{"event":E,"code":0,"data":D}` to the calling client; `data_len = 0` omits data.
    fn send_success(event_ptr: i32, event_len: i32, data_ptr: i32, data_len: i32) -> i32;
    /// Sends `{"event":E,"code":-1,"errorMsg":M}` to the calling client.
    fn send_error(event_ptr: i32, event_len: i32, msg_ptr: i32, msg_len: i32) -> i32;
    /// Sends a success frame to one connection; returns how many it was queued to.
    fn send_to_client(
        client_ptr: i32, client_len: i32,
        event_ptr: i32, event_len: i32,
        data_ptr: i32, data_len: i32,
    ) -> i32;
    /// Sends a success frame to every connection of a user; returns the count.
    fn send_to_user(
        user_ptr: i32, user_len: i32,
        event_ptr: i32, event_len: i32,
        data_ptr: i32, data_len: i32,
    ) -> i32;
    /// Sends a success frame to every member of a tag; returns the count.
    fn send_to_tag(
        tag_ptr: i32, tag_len: i32,
        event_ptr: i32, event_len: i32,
        data_ptr: i32, data_len: i32,
    ) -> i32;
    /// Sends a success frame to every connection; returns the count.
    fn send_to_all(event_ptr: i32, event_len: i32, data_ptr: i32, data_len: i32) -> i32;
    /// Adds the calling client to a tag.
    fn join_tag(tag_ptr: i32, tag_len: i32) -> i32;
    /// Removes the calling client from a tag.
    fn quit_tag(tag_ptr: i32, tag_len: i32) -> i32;
    /// Writes the JSON array of distinct user ids in a tag; returns its full length.
    fn tag_members(tag_ptr: i32, tag_len: i32, buf_ptr: i32, buf_cap: i32) -> i32;
    /// Writes the calling client's id; returns its full length.
    fn client_id(buf_ptr: i32, buf_cap: i32) -> i32;
    /// Writes the calling client's user id (empty for a guest); returns its full length.
    fn user_id(buf_ptr: i32, buf_cap: i32) -> i32;
    /// Writes the verified JWT claims as a JSON object; returns its full length.
    fn claims(buf_ptr: i32, buf_cap: i32) -> i32;
    /// Logs through the host (level 0 trace .. 4 error).
    fn log(level: i32, msg_ptr: i32, msg_len: i32) -> i32;
}
