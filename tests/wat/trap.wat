;; A handler that traps (unreachable) after sending a partial reply.
(module
  (import "switchyard" "send_success" (func $send_success (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "partial")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "switchyard_abi_v1"))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (func (export "boom") (param i32 i32) (result i32)
    unreachable))
