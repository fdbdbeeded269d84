;; The echo handler of docs/ABI.md, written from that page alone, plus `fail`.
(module
  (import "switchyard" "send_success" (func $send_success (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "switchyard_abi_v1"))
  ;; Optional; used when the manifest says instance = "reuse": free everything between events.
  (func (export "switchyard_reset") (global.set $heap (i32.const 1024)))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  ;; echo: send_success(event, data) with the request's own event and data
  (func (export "echo") (param $ptr i32) (param $len i32) (result i32)
    (local $ev_len i32) (local $data_len i32)
    (local.set $ev_len   (i32.load offset=4 (local.get $ptr)))
    (local.set $data_len (i32.load offset=8 (local.get $ptr)))
    (drop (call $send_success
      (i32.add (local.get $ptr) (i32.const 20)) (local.get $ev_len)
      (i32.add (i32.add (local.get $ptr) (i32.const 20)) (local.get $ev_len)) (local.get $data_len)))
    (i32.const 0))
  ;; fail: send nothing, return status 3
  (func (export "fail") (param i32 i32) (result i32) (i32.const 3)))
