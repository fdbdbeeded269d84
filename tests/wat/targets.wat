;; Sends to an empty user id and an empty client id. Used by tests/it/hardening.rs: the host
;; must answer ERR_INVALID (-6), never address guests (who have no user id) as one user "".
;; Each export returns the host's status negated when negative (6 = ERR_INVALID), else 100 + the
;; number of connections reached, so the client's error frame says what the host answered.
(module
  (import "switchyard" "send_to_user" (func $send_to_user (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "switchyard" "send_to_client" (func $send_to_client (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "leak")       ;; 0..4 the event
  (data (i32.const 16) "\"psst\"")  ;; 16..22 JSON data
  (global $heap (mut i32) (i32.const 1024))
  (func (export "switchyard_abi_v1"))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (func $report (param $status i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $status) (i32.const 0))
      (then (i32.sub (i32.const 0) (local.get $status)))
      (else (i32.add (i32.const 100) (local.get $status)))))
  (func (export "to_empty_user") (param i32 i32) (result i32)
    (call $report (call $send_to_user (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 16) (i32.const 6))))
  (func (export "to_empty_client") (param i32 i32) (result i32)
    (call $report (call $send_to_client (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 16) (i32.const 6)))))
