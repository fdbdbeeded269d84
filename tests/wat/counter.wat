;; Counts the events its instance has run, to tell a fresh instance from a reused one.
(module
  (import "switchyard" "send_success" (func $send_success (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (global $count (mut i32) (i32.const 0))
  (func (export "switchyard_abi_v1"))
  (func (export "switchyard_reset") (global.set $heap (i32.const 1024)))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  ;; count: replies with how many events this instance has run, as a one-digit JSON number.
  (func (export "count") (param $ptr i32) (param $len i32) (result i32)
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (i32.store8 (i32.const 16) (i32.add (i32.const 48) (global.get $count)))
    (drop (call $send_success
      (i32.add (local.get $ptr) (i32.const 20)) (i32.load offset=4 (local.get $ptr))
      (i32.const 16) (i32.const 1)))
    (i32.const 0))
  ;; boom: counts, then traps.
  (func (export "boom") (param i32 i32) (result i32)
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    unreachable))
