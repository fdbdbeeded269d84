;; Logs what tests/it/guest_log.rs asks: the request's data (raw JSON text) once, as many times
;; as it has bytes, or a fixed message full of control characters that tries to forge a line.
;; A call that returns 0 replies with `null` data; otherwise its status says what the host did.
(module
  (import "switchyard" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "switchyard" "send_success" (func $send_success (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0..: a newline, a fake log line, a carriage return, an ANSI escape, a bell, U+2028.
  (data (i32.const 0) "forge-me\n2026-01-01T00:00:00Z  INFO switchyard: forged-line\r\1b[2Jcleared\07\e2\80\a8sep")
  (data (i32.const 200) "null")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "switchyard_abi_v1"))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  ;; (data_ptr, data_len) of the request at $p.
  (func $data (param $p i32) (result i32)
    (i32.add (i32.add (local.get $p) (i32.const 20)) (i32.load offset=4 (local.get $p))))
  (func $data_len (param $p i32) (result i32) (i32.load offset=8 (local.get $p)))
  ;; Replies `null` to the request's event when $status is 0; returns $status.
  (func $done (param $p i32) (param $status i32) (result i32)
    (if (i32.eqz (local.get $status))
      (then (drop (call $send_success (i32.add (local.get $p) (i32.const 20)) (i32.load offset=4 (local.get $p)) (i32.const 200) (i32.const 4)))))
    (local.get $status))
  ;; Logs the data once at info; returns the host's status negated (5 = ERR_LIMIT).
  (func (export "log_data") (param $p i32) (param $l i32) (result i32)
    (call $done (local.get $p) (i32.sub (i32.const 0) (call $log (i32.const 2) (call $data (local.get $p)) (call $data_len (local.get $p))))))
  ;; Logs the data data_len times; returns how many calls the host refused with ERR_LIMIT.
  (func (export "flood") (param $p i32) (param $l i32) (result i32)
    (local $i i32) (local $dropped i32)
    (block $done
      (loop $again
        (br_if $done (i32.ge_u (local.get $i) (call $data_len (local.get $p))))
        (if (i32.eq (call $log (i32.const 2) (call $data (local.get $p)) (call $data_len (local.get $p))) (i32.const -5))
          (then (local.set $dropped (i32.add (local.get $dropped) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again)))
    (call $done (local.get $p) (local.get $dropped)))
  (func (export "forge") (param $p i32) (param $l i32) (result i32)
    (call $done (local.get $p) (i32.sub (i32.const 0) (call $log (i32.const 3) (i32.const 0) (i32.const 78))))))
