//! No panic from any input, through the real runtime: every host function called with
//! arbitrary `(ptr, len)` pairs and arbitrary memory contents (tests/wat/fuzz.wat) answers a
//! documented status, and the server goes on serving.

use proptest::prelude::*;
use serde_json::json;

use crate::common::*;

const FUZZ_MANIFEST: &str = r#"
[modules.fuzz]
path = "fuzz.wat"
tags = ["*"]
capabilities = ["send_to_user", "send_to_client", "send_to_all", "claims"]

[[routes]]
event = "fuzz/call"
module = "fuzz"
export = "fuzz"
"#;

/// The import names in fuzz.wat's order (byte 0 of the request, mod 13).
const IMPORTS: [&str; 13] = [
    "send_success",
    "send_error",
    "send_to_client",
    "send_to_user",
    "send_to_tag",
    "send_to_all",
    "join_tag",
    "quit_tag",
    "tag_members",
    "client_id",
    "user_id",
    "claims",
    "log",
];

fn arg() -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => 0i32..2100,
        2 => 65_400i32..65_700,
        2 => any::<i32>(),
        1 => prop::sample::select(vec![i32::MIN, i32::MAX, -1, 0, 25, 65_536]),
    ]
}

/// Memory the arguments point into: random bytes, or text a host function may accept.
fn contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1024),
        "[a-z:{}\\[\\]\"0-9, ]{0,512}".prop_map(String::into_bytes),
        Just(br#"chat:lobby{"a":1}"#.to_vec()),
    ]
}

#[test]
fn every_host_function_answers_a_documented_status_for_any_arguments_and_memory() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s =
        rt.block_on(TestServer::with(FUZZ_MANIFEST, &[("fuzz.wat", &wat("fuzz.wat"))], |c| c.runtime.watch = false));
    // The runner's closure is `Fn`: what it changes is in cells.
    let c = std::cell::RefCell::new(Some(rt.block_on(s.connect("alice"))));
    let calls = std::cell::RefCell::new([0u32; 13]);
    let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
    // A fixed seed: the same 256 calls every run, so that the coverage checked below (every
    // import called, every kind of status seen) holds every run.
    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0015),
        ..ProptestConfig::default()
    };
    proptest!(config, |(import in 0u8..13, args in prop::array::uniform6(arg()), memory in contents())| {
        let mut bytes = vec![import];
        for a in args {
            bytes.extend_from_slice(&a.to_le_bytes());
        }
        bytes.extend_from_slice(&memory);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut client = c.take().expect("the client");
        let status = rt.block_on(async {
            let c = &mut client;
            c.send("fuzz/call", json!(hex)).await;
            // The call's own sends (a reply, a send to this client or to all) come first; the
            // status comes last, as the error frame of the call.
            loop {
                let f = c.recv().await;
                if f["event"] == "fuzz/call" && f["kind"] == "handler_failed" {
                    let msg = f["errorMsg"].as_str().unwrap();
                    break msg.strip_prefix("handler failed with status ").unwrap().parse::<i32>().unwrap() - 1000;
                }
                assert!(f["code"] == 0 || f["kind"] == "handler_error", "a frame the call sent: {f}");
            }
        });
        c.replace(Some(client));
        calls.borrow_mut()[import as usize] += 1;
        seen.borrow_mut().insert(status.min(1));
        let name = IMPORTS[import as usize];
        // >= 0: a count or a length; < 0: one of the six documented errors.
        prop_assert!((-6..=i32::MAX).contains(&status), "{name}{args:?} answered {status}");
        if matches!(name, "client_id" | "user_id" | "claims" | "tag_members") && status >= 0 {
            prop_assert!(status <= 4096, "{name}: a length: {status}");
        }
    });
    let calls = calls.into_inner();
    // The statuses were not all one: successes, bad pointers and the other refusals all came.
    let seen = seen.into_inner();
    assert!([1, 0, -1, -2, -3, -6].iter().all(|s| seen.contains(s)), "statuses seen (1: any > 0): {seen:?}");
    assert!(calls.iter().all(|&n| n > 0), "every import was called: {calls:?}");
    let mut c = c.into_inner().expect("the client");
    // The connection and the server are fine.
    rt.block_on(async {
        assert_eq!(c.request("ping", json!(null)).await["event"], "ping");
        assert_eq!(s.metric("handler_traps_total").await, 0, "no host function trapped the guest");
    });
}
