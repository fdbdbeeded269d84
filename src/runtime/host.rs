//! Host functions: the `switchyard` import namespace of ABI v1 (see [`super::abi`]).
//!
//! Owns bounds-checked access to guest memory, capability checks at call time, and charging
//! the per-call send budget. Everything it delivers goes through the delivery seam. It must
//! never trap the host on guest input: every bad pointer, length, string or JSON becomes a
//! negative status returned to the guest.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use wasmtime::{Caller, Extern, Linker, Memory};

use super::abi::NAMESPACE;
use super::abi::status::*;
use super::manifest::Capability;
use super::state::HostState;
use crate::delivery::{Delivery, MAX_TAG_LEN};
use crate::protocol::{self, ErrorKind};

/// Bounds-checked view of guest bytes: `ptr` and `len` are unsigned 32-bit, overflow-checked.
fn slice(mem: &[u8], ptr: i32, len: i32) -> Result<&[u8], i32> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len == 0 {
        return Ok(&[]);
    }
    let end = ptr.checked_add(len).ok_or(ERR_BAD_POINTER)?;
    mem.get(ptr..end).ok_or(ERR_BAD_POINTER)
}

fn string(mem: &[u8], ptr: i32, len: i32) -> Result<&str, i32> {
    std::str::from_utf8(slice(mem, ptr, len)?).map_err(|_| ERR_BAD_UTF8)
}

/// Optional JSON data: `len == 0` means none; otherwise it must parse.
fn json(mem: &[u8], ptr: i32, len: i32) -> Result<Option<&str>, i32> {
    if len == 0 {
        return Ok(None);
    }
    let s = string(mem, ptr, len).map_err(|e| if e == ERR_BAD_UTF8 { ERR_BAD_JSON } else { e })?;
    serde_json::from_str::<serde::de::IgnoredAny>(s).map_err(|_| ERR_BAD_JSON)?;
    Ok(Some(s))
}

fn tag(mem: &[u8], ptr: i32, len: i32) -> Result<&str, i32> {
    let t = string(mem, ptr, len)?;
    if t.is_empty() || t.len() > MAX_TAG_LEN {
        return Err(ERR_INVALID);
    }
    Ok(t)
}

/// A tag argument the module's `tags` patterns grant; otherwise `ERR_DENIED`, logged.
fn granted_tag<'m>(mem: &'m [u8], st: &HostState, ptr: i32, len: i32, what: &str) -> Result<&'m str, i32> {
    let t = tag(mem, ptr, len)?;
    if !st.module.spec.tag_allowed(t) {
        return Err(st.deny(what, t));
    }
    Ok(t)
}

/// Runs `f` over guest memory and host state; any `Err(status)` is returned to the guest.
fn with_mem(caller: &mut Caller<'_, HostState>, f: impl FnOnce(&mut [u8], &mut HostState) -> Result<i32, i32>) -> i32 {
    let Some(mem) = caller.data().memory else { return ERR_BAD_POINTER };
    let (bytes, state) = mem.data_and_store_mut(caller);
    f(bytes, state).unwrap_or_else(|e| e)
}

/// Writes `value` to a guest buffer if it fits; returns its full length either way.
/// The whole buffer `(buf, cap)` must lie in guest memory, whatever the value's length.
fn write_out(mem: &mut [u8], buf: i32, cap: i32, value: &[u8]) -> Result<i32, i32> {
    let len = i32::try_from(value.len()).map_err(|_| ERR_INVALID)?;
    let (p, c) = (buf as u32 as usize, cap as u32 as usize);
    let end = p.checked_add(c).ok_or(ERR_BAD_POINTER)?;
    let out = mem.get_mut(p..end).ok_or(ERR_BAD_POINTER)?;
    if value.len() <= c {
        out[..value.len()].copy_from_slice(value);
    }
    Ok(len)
}

/// Builds a success frame, charging the budget: a reply to the caller carries the `id` of the
/// frame being handled (`reply`), a send to others none.
fn outbound(mem: &[u8], st: &mut HostState, ev: (i32, i32), data: (i32, i32), reply: bool) -> Result<Utf8Bytes, i32> {
    let event = string(mem, ev.0, ev.1)?;
    let data = json(mem, data.0, data.1)?;
    let id = if reply { st.reply_id.as_deref() } else { None };
    let frame = protocol::reply(event, data, id);
    st.charge(frame.len())?;
    Ok(frame)
}

fn count(n: usize) -> Result<i32, i32> {
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

/// `send_to_client` / `send_to_user`: capability check, one frame, one delivery.
fn send_to_one_target(
    c: &mut Caller<'_, HostState>,
    cap: Capability,
    target: (i32, i32),
    ev: (i32, i32),
    data: (i32, i32),
    send: fn(&Delivery, &str, &Utf8Bytes) -> usize,
) -> i32 {
    with_mem(c, |m, st| {
        let target = string(m, target.0, target.1)?;
        if !st.module.spec.has(cap) {
            return Err(st.deny(if cap == Capability::SendToUser { "send_to_user" } else { "send_to_client" }, target));
        }
        // Nobody is addressed by an empty id: guests have no user id, and are not one user.
        if target.is_empty() {
            return Err(ERR_INVALID);
        }
        let frame = outbound(m, st, ev, data, false)?;
        count(send(&st.delivery, target, &frame))
    })
}

/// Defines every host function in `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    let ns = NAMESPACE;
    linker.func_wrap(ns, "send_success", |mut c: Caller<'_, HostState>, ep: i32, el: i32, dp: i32, dl: i32| {
        with_mem(&mut c, |m, st| {
            let frame = outbound(m, st, (ep, el), (dp, dl), true)?;
            st.client.send(frame);
            Ok(OK)
        })
    })?;
    linker.func_wrap(ns, "send_error", |mut c: Caller<'_, HostState>, ep: i32, el: i32, mp: i32, ml: i32| {
        with_mem(&mut c, |m, st| {
            let event = string(m, ep, el)?;
            let msg = string(m, mp, ml)?;
            let frame = protocol::error_reply(event, ErrorKind::Handler, msg, st.reply_id.as_deref());
            st.charge(frame.len())?;
            st.client.send(frame);
            Ok(OK)
        })
    })?;
    linker.func_wrap(
        ns,
        "send_to_client",
        |mut c: Caller<'_, HostState>, tp: i32, tl: i32, ep: i32, el: i32, dp: i32, dl: i32| {
            send_to_one_target(&mut c, Capability::SendToClient, (tp, tl), (ep, el), (dp, dl), Delivery::send_to_client)
        },
    )?;
    linker.func_wrap(
        ns,
        "send_to_user",
        |mut c: Caller<'_, HostState>, tp: i32, tl: i32, ep: i32, el: i32, dp: i32, dl: i32| {
            send_to_one_target(&mut c, Capability::SendToUser, (tp, tl), (ep, el), (dp, dl), Delivery::send_to_user)
        },
    )?;
    linker.func_wrap(
        ns,
        "send_to_tag",
        |mut c: Caller<'_, HostState>, tp: i32, tl: i32, ep: i32, el: i32, dp: i32, dl: i32| {
            with_mem(&mut c, |m, st| {
                let t = granted_tag(m, st, tp, tl, "send_to_tag")?;
                let frame = outbound(m, st, (ep, el), (dp, dl), false)?;
                count(st.delivery.send_to_tag(t, &frame))
            })
        },
    )?;
    linker.func_wrap(ns, "send_to_all", |mut c: Caller<'_, HostState>, ep: i32, el: i32, dp: i32, dl: i32| {
        with_mem(&mut c, |m, st| {
            if !st.module.spec.has(Capability::SendToAll) {
                return Err(st.deny("send_to_all", "*"));
            }
            let frame = outbound(m, st, (ep, el), (dp, dl), false)?;
            count(st.delivery.send_to_all(&frame))
        })
    })?;
    linker.func_wrap_async(ns, "join_tag", |mut c: Caller<'_, HostState>, (tp, tl): (i32, i32)| {
        Box::new(async move {
            // The tag is copied out first: joining may wait for the cluster to subscribe.
            let mut tag = String::new();
            let checked = with_mem(&mut c, |m, st| {
                tag.push_str(granted_tag(m, st, tp, tl, "join_tag")?);
                Ok(OK)
            });
            if checked != OK {
                return Ok(checked);
            }
            let st = c.data();
            let (delivery, client) = (st.delivery.clone(), st.client.clone());
            Ok(delivery.join(&client, &tag).await.map_or(ERR_LIMIT, |()| OK))
        })
    })?;
    linker.func_wrap(ns, "quit_tag", |mut c: Caller<'_, HostState>, tp: i32, tl: i32| {
        with_mem(&mut c, |m, st| {
            let t = granted_tag(m, st, tp, tl, "quit_tag")?;
            st.delivery.quit(&st.client, t);
            Ok(OK)
        })
    })?;
    linker.func_wrap_async(
        ns,
        "tag_members",
        |mut c: Caller<'_, HostState>, (tp, tl, bp, bc): (i32, i32, i32, i32)| {
            Box::new(async move {
                let mut tag = String::new();
                let checked = with_mem(&mut c, |m, st| {
                    tag.push_str(granted_tag(m, st, tp, tl, "tag_members")?);
                    Ok(OK)
                });
                if checked != OK {
                    return Ok(checked);
                }
                let delivery: Arc<Delivery> = c.data().delivery.clone();
                let members = delivery.tag_members(&tag).await;
                Ok(with_mem(&mut c, |m, _| {
                    let json = serde_json::to_vec(&members).map_err(|_| ERR_INVALID)?;
                    write_out(m, bp, bc, &json)
                }))
            })
        },
    )?;
    linker.func_wrap(ns, "client_id", |mut c: Caller<'_, HostState>, bp: i32, bc: i32| {
        with_mem(&mut c, |m, st| {
            let id = st.client.id_str.clone();
            write_out(m, bp, bc, id.as_bytes())
        })
    })?;
    linker.func_wrap(ns, "user_id", |mut c: Caller<'_, HostState>, bp: i32, bc: i32| {
        with_mem(&mut c, |m, st| {
            let user = st.client.identity.user.clone();
            write_out(m, bp, bc, user.as_bytes())
        })
    })?;
    linker.func_wrap(ns, "claims", |mut c: Caller<'_, HostState>, bp: i32, bc: i32| {
        with_mem(&mut c, |m, st| {
            if !st.module.spec.has(Capability::Claims) {
                return Err(st.deny("claims", ""));
            }
            let claims = st.client.identity.claims.clone();
            write_out(m, bp, bc, claims.as_bytes())
        })
    })?;
    linker.func_wrap(ns, "log", |mut c: Caller<'_, HostState>, level: i32, mp: i32, ml: i32| {
        with_mem(&mut c, |m, st| {
            let msg = slice(m, mp, ml)?;
            if !(0..=4).contains(&level) {
                return Err(ERR_INVALID);
            }
            st.guest_log(level, None, msg)?;
            Ok(OK)
        })
    })?;
    Ok(())
}

/// Looks up the guest's exported memory once per call (host functions reuse it).
pub fn memory_of(ext: Option<Extern>) -> Option<Memory> {
    ext.and_then(Extern::into_memory)
}

/// Every guest `(ptr, len)` pair and every memory content gives a documented status, never a
/// panic: the helpers every host function reads and writes guest memory through.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    /// Pointers and lengths around the memory's end, at the i32 edges, and anywhere.
    fn arg() -> impl Strategy<Value = i32> {
        prop_oneof![
            4 => -4i32..600,
            2 => any::<i32>(),
            1 => prop::sample::select(vec![i32::MIN, i32::MAX, -1, 0, 1, 511, 512, 513]),
        ]
    }

    fn memory() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop_oneof![any::<u8>(), prop::sample::select(b"{}[]\"1a, \xc3\xa9".to_vec())], 0..512)
    }

    /// The bytes `(ptr, len)` names, if they are all inside `mem`.
    fn inside(mem: &[u8], ptr: i32, len: i32) -> Option<&[u8]> {
        let (p, l) = (u64::from(ptr as u32), u64::from(len as u32));
        if l == 0 {
            return Some(&[]);
        }
        (p + l <= mem.len() as u64).then(|| &mem[p as usize..(p + l) as usize])
    }

    proptest! {
        #![proptest_config(crate::proptest_config())]

        #[test]
        fn reads(mem in memory(), ptr in arg(), len in arg()) {
            let expected = inside(&mem, ptr, len);
            match slice(&mem, ptr, len) {
                Ok(s) => prop_assert_eq!(Some(s), expected),
                Err(e) => prop_assert!(e == ERR_BAD_POINTER && expected.is_none()),
            }
            match string(&mem, ptr, len) {
                Ok(s) => prop_assert_eq!(Some(s.as_bytes()), expected),
                Err(e) if e == ERR_BAD_POINTER => prop_assert!(expected.is_none()),
                Err(e) => prop_assert!(e == ERR_BAD_UTF8 && expected.is_some_and(|b| std::str::from_utf8(b).is_err())),
            }
            match json(&mem, ptr, len) {
                Ok(None) => prop_assert_eq!(len, 0),
                Ok(Some(s)) => prop_assert!(serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()),
                Err(e) => prop_assert!(e == ERR_BAD_POINTER || e == ERR_BAD_JSON),
            }
            match tag(&mem, ptr, len) {
                Ok(t) => prop_assert!(!t.is_empty() && t.len() <= MAX_TAG_LEN),
                Err(e) => prop_assert!([ERR_BAD_POINTER, ERR_BAD_UTF8, ERR_INVALID].contains(&e)),
            }
        }

        #[test]
        fn writes(mem in memory(), buf in arg(), cap in arg(), value in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut out = mem.clone();
            let whole = inside(&mem, buf, cap).is_some() && !(cap == 0 && (buf as u32 as usize) > mem.len());
            match write_out(&mut out, buf, cap, &value) {
                Ok(n) => {
                    prop_assert_eq!(n as usize, value.len(), "the full length, whether it fit or not");
                    let (p, c) = (buf as u32 as usize, cap as u32 as usize);
                    prop_assert!(p + c <= mem.len(), "the whole buffer is inside memory");
                    if value.len() <= c {
                        prop_assert_eq!(&out[p..p + value.len()], &value[..]);
                        prop_assert_eq!(&out[..p], &mem[..p]);
                        prop_assert_eq!(&out[p + value.len()..], &mem[p + value.len()..]);
                    } else {
                        prop_assert_eq!(&out, &mem, "nothing written when it does not fit");
                    }
                }
                Err(e) => {
                    prop_assert_eq!(e, ERR_BAD_POINTER);
                    prop_assert!(!whole);
                    prop_assert_eq!(&out, &mem, "nothing written");
                }
            }
        }
    }
}
