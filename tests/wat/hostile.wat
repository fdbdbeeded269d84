;; A hostile addon: every export attacks the host a different way. Used by tests/it/sandbox.rs.
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
  (data (i32.const 0) "admin")          ;; 0..5
  (data (i32.const 16) "chat:x")        ;; 16..22
  (data (i32.const 32) "1")             ;; 32..33 a JSON value
  (data (i32.const 48) "all refused")   ;; 48..59
  (global $heap (mut i32) (i32.const 1024))
  (func (export "switchyard_abi_v1"))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))

  ;; The request's event: (ptr + 20, event_len).
  (func $ev (param $req i32) (result i32) (i32.add (local.get $req) (i32.const 20)))
  (func $ev_len (param $req i32) (result i32) (i32.load offset=4 (local.get $req)))

  (func (export "echo") (param $p i32) (param $l i32) (result i32)
    (drop (call $send_success (call $ev (local.get $p)) (call $ev_len (local.get $p)) (i32.const 32) (i32.const 1)))
    (i32.const 0))

  ;; An infinite loop.
  (func (export "spin") (param i32 i32) (result i32)
    (loop $l (br $l))
    (i32.const 0))

  ;; Tells user "admin" it is running (send_to_user, delivered at once, unlike its own replies,
  ;; which go out when the call ends), then loops forever.
  (func (export "tell_admin_and_spin") (param $p i32) (param $l i32) (result i32)
    (drop (call $send_to_user (i32.const 0) (i32.const 5) (call $ev (local.get $p)) (call $ev_len (local.get $p)) (i32.const 32) (i32.const 1)))
    (loop $l (br $l))
    (i32.const 0))

  ;; Grows memory until refused, then traps like an allocator would.
  (func (export "bomb") (param i32 i32) (result i32)
    (loop $l
      (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)

  ;; Unbounded recursion: a stack overflow.
  (func $recurse (export "recurse") (param $a i32) (param $b i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get $a) (i32.const 1)) (local.get $b)) (i32.const 1)))

  ;; Sends replies until the host says stop; returns 0 so only the budget limits it.
  (func (export "flood") (param $p i32) (param $l i32) (result i32)
    (local $i i32)
    (loop $l
      (if (i32.eqz (call $send_success (call $ev (local.get $p)) (call $ev_len (local.get $p)) (i32.const 32) (i32.const 1)))
        (then
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))))
    (i32.const 0))

  ;; Sends to a tag outside its grant; returns the host's status negated (4 = denied).
  (func (export "denied_tag") (param $p i32) (param $l i32) (result i32)
    (i32.sub (i32.const 0) (call $send_to_tag (i32.const 0) (i32.const 5) (i32.const 0) (i32.const 5) (i32.const 32) (i32.const 1))))

  ;; Passes out-of-bounds and overflowing (ptr, len) pairs to every host function. Returns
  ;; 0 and replies "all refused" only if every call answered ERR_BAD_POINTER (-1); otherwise
  ;; returns 100 + the index of the first call that did not.
  (func (export "badptr") (param $p i32) (param $l i32) (result i32)
    (local $k i32) (local $ptr i32) (local $len i32) (local $n i32)
    (loop $pairs
      ;; pair 0: just past the end of memory; pair 1: (-1, -1) overflows 32 bits
      (if (i32.eqz (local.get $k))
        (then (local.set $ptr (i32.const 65530)) (local.set $len (i32.const 100)))
        (else (local.set $ptr (i32.const -1)) (local.set $len (i32.const -1))))
      (if (i32.ne (call $send_success (local.get $ptr) (local.get $len) (i32.const 32) (i32.const 1)) (i32.const -1)) (then (return (i32.const 100))))
      (if (i32.ne (call $send_success (i32.const 0) (i32.const 5) (local.get $ptr) (local.get $len)) (i32.const -1)) (then (return (i32.const 101))))
      (if (i32.ne (call $send_error (local.get $ptr) (local.get $len) (i32.const 0) (i32.const 5)) (i32.const -1)) (then (return (i32.const 102))))
      (if (i32.ne (call $send_error (i32.const 0) (i32.const 5) (local.get $ptr) (local.get $len)) (i32.const -1)) (then (return (i32.const 103))))
      (if (i32.ne (call $send_to_client (local.get $ptr) (local.get $len) (i32.const 0) (i32.const 5) (i32.const 32) (i32.const 1)) (i32.const -1)) (then (return (i32.const 104))))
      (if (i32.ne (call $send_to_client (i32.const 32) (i32.const 1) (local.get $ptr) (local.get $len) (i32.const 32) (i32.const 1)) (i32.const -1)) (then (return (i32.const 105))))
      (if (i32.ne (call $send_to_client (i32.const 32) (i32.const 1) (i32.const 0) (i32.const 5) (local.get $ptr) (local.get $len)) (i32.const -1)) (then (return (i32.const 106))))
      (if (i32.ne (call $send_to_user (local.get $ptr) (local.get $len) (i32.const 0) (i32.const 5) (i32.const 32) (i32.const 1)) (i32.const -1)) (then (return (i32.const 107))))
      (if (i32.ne (call $send_to_user (i32.const 0) (i32.const 5) (i32.const 0) (i32.const 5) (local.get $ptr) (local.get $len)) (i32.const -1)) (then (return (i32.const 108))))
      (if (i32.ne (call $send_to_tag (local.get $ptr) (local.get $len) (i32.const 0) (i32.const 5) (i32.const 32) (i32.const 1)) (i32.const -1)) (then (return (i32.const 109))))
      (if (i32.ne (call $send_to_tag (i32.const 16) (i32.const 6) (local.get $ptr) (local.get $len) (i32.const 32) (i32.const 1)) (i32.const -1)) (then (return (i32.const 110))))
      (if (i32.ne (call $send_to_tag (i32.const 16) (i32.const 6) (i32.const 0) (i32.const 5) (local.get $ptr) (local.get $len)) (i32.const -1)) (then (return (i32.const 111))))
      (if (i32.ne (call $send_to_all (local.get $ptr) (local.get $len) (i32.const 32) (i32.const 1)) (i32.const -1)) (then (return (i32.const 112))))
      (if (i32.ne (call $send_to_all (i32.const 0) (i32.const 5) (local.get $ptr) (local.get $len)) (i32.const -1)) (then (return (i32.const 113))))
      (if (i32.ne (call $join_tag (local.get $ptr) (local.get $len)) (i32.const -1)) (then (return (i32.const 114))))
      (if (i32.ne (call $quit_tag (local.get $ptr) (local.get $len)) (i32.const -1)) (then (return (i32.const 115))))
      (if (i32.ne (call $tag_members (local.get $ptr) (local.get $len) (i32.const 1024) (i32.const 64)) (i32.const -1)) (then (return (i32.const 116))))
      (if (i32.ne (call $tag_members (i32.const 16) (i32.const 6) (local.get $ptr) (i32.const 64)) (i32.const -1)) (then (return (i32.const 117))))
      (if (i32.ne (call $client_id (local.get $ptr) (i32.const 64)) (i32.const -1)) (then (return (i32.const 118))))
      (if (i32.ne (call $user_id (local.get $ptr) (i32.const 64)) (i32.const -1)) (then (return (i32.const 119))))
      (if (i32.ne (call $claims (local.get $ptr) (i32.const 4096)) (i32.const -1)) (then (return (i32.const 120))))
      (if (i32.ne (call $log (i32.const 2) (local.get $ptr) (local.get $len)) (i32.const -1)) (then (return (i32.const 121))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $pairs (i32.lt_u (local.get $k) (i32.const 2))))
    (drop (call $send_error (call $ev (local.get $p)) (call $ev_len (local.get $p)) (i32.const 48) (i32.const 11)))
    (i32.const 0)))
