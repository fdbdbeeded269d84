//! What crosses Redis: channel names and the messages published on them.
//!
//! Channels follow Centrifugo's layout, so that Redis's own subscription table does the
//! routing: a node subscribes to `<p>.tag.<tag>` while it has a member of the tag, to
//! `<p>.user.<user>` while it has a connection of the user, always to its own `<p>.node.<id>`
//! (sends and kicks for one of its clients, whose id names the node) and to `<p>.all`.
//!
//! A message is `op, target kind, origin node, target, payload`, length-prefixed (binary safe,
//! no escaping): the origin lets a node ignore its own echo, and the frame is the payload,
//! serialised once by the origin and shared by every local recipient. It must never hold
//! state: it only names and encodes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::delivery::Target;

/// A channel's name for a target; `node` names the node that holds a client.
pub fn channel(prefix: &str, to: Target<'_>, node_of_client: Option<&str>) -> String {
    match to {
        Target::Client(_) => node_channel(prefix, node_of_client.unwrap_or("")),
        Target::User(u) => format!("{prefix}.user.{u}"),
        Target::Tag(t) => format!("{prefix}.tag.{t}"),
        Target::All => all_channel(prefix),
    }
}

pub fn node_channel(prefix: &str, node: &str) -> String {
    format!("{prefix}.node.{node}")
}

pub fn all_channel(prefix: &str) -> String {
    format!("{prefix}.all")
}

/// The node in a cluster client id (`<node>-<n>`).
pub fn node_of(client_id: &str) -> Option<&str> {
    client_id.rsplit_once('-').map(|(node, _)| node).filter(|n| !n.is_empty())
}

/// What a message asks the receiving node to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Deliver the payload (a frame) to the target's local connections.
    Send,
    /// Close the target's local connections with the code in the payload.
    Kick,
}

/// A decoded message, borrowing from the received bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub op: Op,
    pub origin: &'a str,
    pub to: Target<'a>,
    pub payload: &'a [u8],
}

fn kind(to: Target<'_>) -> (u8, &str) {
    match to {
        Target::Client(c) => (b'c', c),
        Target::User(u) => (b'u', u),
        Target::Tag(t) => (b't', t),
        Target::All => (b'a', ""),
    }
}

/// Encodes a message. Names longer than the format allows (255-byte origin, 64 KiB target)
/// are refused.
pub fn encode(op: Op, origin: &str, to: Target<'_>, payload: &[u8]) -> Option<Bytes> {
    let (k, target) = kind(to);
    let origin_len = u8::try_from(origin.len()).ok()?;
    let target_len = u16::try_from(target.len()).ok()?;
    let mut b = BytesMut::with_capacity(5 + origin.len() + target.len() + payload.len());
    b.put_u8(match op {
        Op::Send => b'S',
        Op::Kick => b'K',
    });
    b.put_u8(k);
    b.put_u8(origin_len);
    b.put_slice(origin.as_bytes());
    b.put_u16_le(target_len);
    b.put_slice(target.as_bytes());
    b.put_slice(payload);
    Some(b.freeze())
}

/// Decodes a message; `None` for anything malformed (counted and dropped by the caller).
pub fn decode(b: &[u8]) -> Option<Message<'_>> {
    let op = match *b.first()? {
        b'S' => Op::Send,
        b'K' => Op::Kick,
        _ => return None,
    };
    let k = *b.get(1)?;
    let origin_len = usize::from(*b.get(2)?);
    let origin = std::str::from_utf8(b.get(3..3 + origin_len)?).ok()?;
    let at = 3 + origin_len;
    let target_len = usize::from(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?));
    let target = std::str::from_utf8(b.get(at + 2..at + 2 + target_len)?).ok()?;
    let payload = b.get(at + 2 + target_len..)?;
    let to = match k {
        b'c' => Target::Client(target),
        b'u' => Target::User(target),
        b't' => Target::Tag(target),
        b'a' => Target::All,
        _ => return None,
    };
    Some(Message { op, origin, to, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_for_every_target() {
        for to in [Target::Client("n1-7"), Target::User("ålice"), Target::Tag("chat:lobby"), Target::All] {
            let b = encode(Op::Send, "n1", to, br#"{"event":"x"}"#).unwrap();
            let m = decode(&b).unwrap();
            assert_eq!(m, Message { op: Op::Send, origin: "n1", to, payload: br#"{"event":"x"}"# });
        }
        let k = encode(Op::Kick, "n2", Target::User("bob"), &4001u16.to_le_bytes()).unwrap();
        assert_eq!(decode(&k).unwrap().op, Op::Kick);
    }

    #[test]
    fn malformed_messages_are_refused_not_misread() {
        let good = encode(Op::Send, "node", Target::Tag("t"), b"frame").unwrap();
        for cut in 0..9 {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        assert!(decode(b"X").is_none());
        assert!(encode(Op::Send, &"n".repeat(256), Target::All, b"").is_none());
    }

    #[test]
    fn a_client_id_names_its_node() {
        assert_eq!(node_of("a1b2-17"), Some("a1b2"));
        assert_eq!(node_of("my-node-3"), Some("my-node"));
        assert_eq!(node_of("17"), None);
        assert_eq!(channel("sy", Target::Client("x-1"), Some("x")), "sy.node.x");
        assert_eq!(channel("sy", Target::Tag("room"), None), "sy.tag.room");
    }
}
