;; The cheapest possible ABI v1 handler: returns 0 without touching the host.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "switchyard_abi_v1"))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  ;; For instance = "reuse": the next event's request goes where this one's went.
  (func (export "switchyard_reset") (global.set $heap (i32.const 1024)))
  (func (export "noop") (param i32 i32) (result i32) (i32.const 0)))
