;; Calls one host function with arguments and memory contents the test chooses: the request's
;; data is a JSON string of hex digits, decoded into memory from offset 0. Byte 0 picks the
;; import (mod 13, in the order of the imports below), bytes 1..25 are six little-endian i32
;; arguments (as many as the import takes), and everything decoded is the memory the
;; arguments may point into. Returns 1000 + the host's status, so the client's error frame
;; ("handler failed with status N") carries it. Used by tests/it/props.rs.
(module
  (import "switchyard" "send_success" (func $send_success (param i32 i32 i32 i32) (result i32)))
  (import "switchyard" "send_error" (func $send_error (param i32 i32 i32 i32) (result i32)))
  (import "switchyard" "send_to_client" (func $send_to_client (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "switchyard" "send_to_user" (func $send_to_user (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "switchyard" "send_to_tag" (func $send_to_tag (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "switchyard" "send_to_all" (func $send_to_all (param i32 i32 i32 i32) (result i32)))
  (import "switchyard" "join_tag" (func $join_tag (param i32 i32) (result i32)))
  (import "switchyard" "quit_tag" (func $quit_tag (param i32 i32) (result i32)))
  (import "switchyard" "tag_members" (func $tag_members (param i32 i32 i32 i32) (result i32)))
  (import "switchyard" "client_id" (func $client_id (param i32 i32) (result i32)))
  (import "switchyard" "user_id" (func $user_id (param i32 i32) (result i32)))
  (import "switchyard" "claims" (func $claims (param i32 i32) (result i32)))
  (import "switchyard" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; The request is written from 40000 on, past what the hex can decode into.
  (global $heap (mut i32) (i32.const 40000))
  (func (export "switchyard_abi_v1"))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (func $nibble (param $c i32) (result i32)
    (if (result i32) (i32.le_u (local.get $c) (i32.const 57))
      (then (i32.sub (local.get $c) (i32.const 48)))
      (else (i32.sub (i32.or (local.get $c) (i32.const 32)) (i32.const 87)))))
  (func $arg (param $i i32) (result i32) (i32.load offset=1 (i32.mul (local.get $i) (i32.const 4))))
  (func (export "fuzz") (param $p i32) (param $l i32) (result i32)
    (local $hex i32) (local $n i32) (local $i i32) (local $status i32)
    ;; data starts after the header and the event; skip its opening quote
    (local.set $hex (i32.add (i32.add (local.get $p) (i32.const 21)) (i32.load offset=4 (local.get $p))))
    (local.set $n (i32.div_u (i32.sub (i32.load offset=8 (local.get $p)) (i32.const 2)) (i32.const 2)))
    (block $decoded
      (loop $next
        (br_if $decoded (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store8 (local.get $i)
          (i32.or
            (i32.shl (call $nibble (i32.load8_u (i32.add (local.get $hex) (i32.shl (local.get $i) (i32.const 1))))) (i32.const 4))
            (call $nibble (i32.load8_u (i32.add (local.get $hex) (i32.add (i32.shl (local.get $i) (i32.const 1)) (i32.const 1)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (block $done
      (block $c12 (block $c11 (block $c10 (block $c9 (block $c8 (block $c7 (block $c6
      (block $c5 (block $c4 (block $c3 (block $c2 (block $c1 (block $c0
        (br_table $c0 $c1 $c2 $c3 $c4 $c5 $c6 $c7 $c8 $c9 $c10 $c11 $c12
          (i32.rem_u (i32.load8_u (i32.const 0)) (i32.const 13))))
        (local.set $status (call $send_success (call $arg (i32.const 0)) (call $arg (i32.const 1)) (call $arg (i32.const 2)) (call $arg (i32.const 3)))) (br $done))
        (local.set $status (call $send_error (call $arg (i32.const 0)) (call $arg (i32.const 1)) (call $arg (i32.const 2)) (call $arg (i32.const 3)))) (br $done))
        (local.set $status (call $send_to_client (call $arg (i32.const 0)) (call $arg (i32.const 1)) (call $arg (i32.const 2)) (call $arg (i32.const 3)) (call $arg (i32.const 4)) (call $arg (i32.const 5)))) (br $done))
        (local.set $status (call $send_to_user (call $arg (i32.const 0)) (call $arg (i32.const 1)) (call $arg (i32.const 2)) (call $arg (i32.const 3)) (call $arg (i32.const 4)) (call $arg (i32.const 5)))) (br $done))
        (local.set $status (call $send_to_tag (call $arg (i32.const 0)) (call $arg (i32.const 1)) (call $arg (i32.const 2)) (call $arg (i32.const 3)) (call $arg (i32.const 4)) (call $arg (i32.const 5)))) (br $done))
        (local.set $status (call $send_to_all (call $arg (i32.const 0)) (call $arg (i32.const 1)) (call $arg (i32.const 2)) (call $arg (i32.const 3)))) (br $done))
        (local.set $status (call $join_tag (call $arg (i32.const 0)) (call $arg (i32.const 1)))) (br $done))
        (local.set $status (call $quit_tag (call $arg (i32.const 0)) (call $arg (i32.const 1)))) (br $done))
        (local.set $status (call $tag_members (call $arg (i32.const 0)) (call $arg (i32.const 1)) (call $arg (i32.const 2)) (call $arg (i32.const 3)))) (br $done))
        (local.set $status (call $client_id (call $arg (i32.const 0)) (call $arg (i32.const 1)))) (br $done))
        (local.set $status (call $user_id (call $arg (i32.const 0)) (call $arg (i32.const 1)))) (br $done))
        (local.set $status (call $claims (call $arg (i32.const 0)) (call $arg (i32.const 1)))) (br $done))
      (local.set $status (call $log (call $arg (i32.const 0)) (call $arg (i32.const 1)) (call $arg (i32.const 2)))))
    (i32.add (i32.const 1000) (local.get $status))))
