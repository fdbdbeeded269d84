//! The closed-loop request engine shared by echo, swap, hostile and smoke: each connection keeps
//! K requests `{"event":E,"data":{"n":seq}}` in flight and matches replies by `n`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::net::Ws;
use crate::rawws::{Incoming, RawWs};
use crate::stats::{Counter, ErrKind, Errors, Frame, Hists, LocalHist, find_num};

/// With alternating hostile phases: the start of each window not counted (see `Load::alternate`).
pub const ALT_GUARD: Duration = Duration::from_millis(250);

pub struct Load {
    pub event: String,
    pub inflight: usize,
    pub base: Instant,
    /// Replies before this are warmup: not in throughput nor latency.
    pub measure_start: Instant,
    /// Hostile with baseline: replies from here on go to phase 1.
    pub split: Option<Instant>,
    /// Hostile with alternating phases: windows of this length alternate baseline (phase 0)
    /// and attack (phase 1) from `measure_start`; the first `ALT_GUARD` of each window counts
    /// for neither (attack calls still finishing, or attackers starting).
    pub alternate: Option<Duration>,
    /// Several servers loaded in turn (`switchyard-bench alternate`): this load only sends in
    /// its own windows and counts only their replies (after `ALT_GUARD`).
    pub rotation: Option<Rotation>,
    /// In a rotation: counted replies per window index (summed from the workers at their end).
    pub per_window: Mutex<Vec<u64>>,
    /// End of the measured window, as nanoseconds after `base`; movable (swap ends early).
    end_ns: AtomicU64,
    /// After the end, outstanding replies are awaited this long, then counted missing.
    pub drain: Duration,
    pub req_timeout: Duration,
    pub hists: [Hists; 2],
    pub ok: [Counter; 2],
    pub sent: Counter,
    pub replies: Counter,
    /// Requests that never got a reply (timed out, or still outstanding at the end).
    pub missing: Counter,
    /// Frames that were not replies to our requests (pushes, late replies after a timeout).
    pub others: Counter,
    pub errors: Arc<Errors>,
    pub swap: Option<Arc<SwapWatch>>,
}

impl Load {
    pub fn new(event: &str, inflight: usize, warmup: Duration, duration: Duration, errors: Arc<Errors>) -> Self {
        let base = Instant::now();
        Self {
            event: event.to_string(),
            inflight: inflight.max(1),
            base,
            measure_start: base + warmup,
            split: None,
            alternate: None,
            rotation: None,
            per_window: Mutex::new(Vec::new()),
            end_ns: AtomicU64::new((warmup + duration).as_nanos() as u64),
            drain: Duration::from_secs(3),
            req_timeout: Duration::from_secs(10),
            hists: [Hists::new(), Hists::new()],
            ok: Default::default(),
            sent: Counter::default(),
            replies: Counter::default(),
            missing: Counter::default(),
            others: Counter::default(),
            errors,
            swap: None,
        }
    }
    pub fn end(&self) -> Instant {
        self.base + Duration::from_nanos(self.end_ns.load(Relaxed))
    }
    pub fn set_end(&self, t: Instant) {
        self.end_ns.store(t.saturating_duration_since(self.base).as_nanos() as u64, Relaxed);
    }
    /// Makes this load one of `rot.of` taking turns from `base` (shared by all of them): the
    /// warmup and the measured window keep their lengths, from the new base.
    pub fn rotate(&mut self, base: Instant, rot: Rotation) {
        self.measure_start = base + (self.measure_start - self.base);
        self.base = base;
        self.rotation = Some(rot);
    }

    /// Which phase a reply at `now` counts for; `None` in an alternation guard band (or, in a
    /// rotation, outside this load's own windows).
    pub fn phase(&self, now: Instant) -> Option<usize> {
        if let Some(rot) = self.rotation {
            let (k, off) = rot.at(now.saturating_duration_since(self.base));
            return (rot.mine(k) && off >= ALT_GUARD).then_some(0);
        }
        if let Some(period) = self.alternate {
            let (k, off) = Rotation { period, me: 0, of: 2 }.at(now.saturating_duration_since(self.measure_start));
            return (off >= ALT_GUARD).then_some((k % 2) as usize);
        }
        Some(self.split.map_or(0, |s| (now >= s) as usize))
    }

    /// Attackers with alternating phases: the next instant at or after `now` when they may send
    /// (inside an attack window, not in its last `ALT_GUARD`), so that attack calls end before
    /// the baseline window they would spill into starts counting.
    pub fn attack_send_time(&self, now: Instant) -> Instant {
        let Some(period) = self.alternate else { return now };
        if now < self.measure_start {
            return self.measure_start + period;
        }
        let t = now.saturating_duration_since(self.measure_start);
        let k = t.as_nanos() / period.as_nanos();
        let win_start = self.measure_start + period * k as u32;
        if k % 2 == 1 && now + ALT_GUARD < win_start + period {
            now
        } else {
            win_start + period * if k % 2 == 1 { 2 } else { 1 }
        }
    }

    /// Whether this load may send at `now` (in a rotation: only in its own windows).
    pub fn may_send(&self, now: Instant) -> bool {
        self.rotation.is_none_or(|rot| rot.mine(rot.at(now.saturating_duration_since(self.base)).0))
    }

    /// In a rotation, the start of this load's next window after `now`; otherwise never.
    fn next_turn(&self, now: Instant) -> Option<Instant> {
        let rot = self.rotation?;
        let (mut k, _) = rot.at(now.saturating_duration_since(self.base));
        k += 1;
        while !rot.mine(k) {
            k += 1;
        }
        Some(self.base + rot.period * k as u32)
    }

    /// Index of the rotation window at `now` (0 without a rotation).
    pub fn window_index(&self, now: Instant) -> usize {
        self.rotation.map_or(0, |rot| rot.at(now.saturating_duration_since(self.base)).0 as usize)
    }

    /// The counted part (past `ALT_GUARD`, inside the measured window) of every window of
    /// `rot.period` from `origin` that belongs to `rot.me`.
    fn counted(&self, origin: Instant, rot: Rotation) -> Duration {
        let (end, mut sum) = (self.end(), Duration::ZERO);
        for k in 0u64.. {
            let at = origin + rot.period * k as u32;
            if at >= end {
                break;
            }
            let from = (at + ALT_GUARD).max(self.measure_start);
            let stop = (at + rot.period).min(end);
            if rot.mine(k) && from < stop {
                sum += stop - from;
            }
        }
        sum
    }

    /// Length of the measured window of phase `p` (0 = before split / whole window).
    pub fn window(&self, p: usize) -> Duration {
        let end = self.end();
        if let Some(rot) = self.rotation {
            return self.counted(self.base, rot);
        }
        if let Some(period) = self.alternate {
            return self.counted(self.measure_start, Rotation { period, me: p, of: 2 });
        }
        match (self.split, p) {
            (None, _) => end.saturating_duration_since(self.measure_start),
            (Some(s), 0) => s.saturating_duration_since(self.measure_start),
            (Some(s), _) => end.saturating_duration_since(s),
        }
    }
}

/// Turns: windows of `period` from an origin (the loads' shared base; for hostile's alternation,
/// the start of measuring), window `k` belonging to turn `k % of`.
#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    pub period: Duration,
    pub me: usize,
    pub of: usize,
}

impl Rotation {
    /// (window index, offset into it) of a time since the base.
    fn at(self, since_base: Duration) -> (u64, Duration) {
        let p = self.period.as_nanos().max(1);
        let t = since_base.as_nanos();
        ((t / p) as u64, Duration::from_nanos((t % p) as u64))
    }
    fn mine(self, k: u64) -> bool {
        k % self.of as u64 == self.me as u64
    }
}

/// Watches reply versions during a module swap: the driver arms it with the version it just
/// wrote, workers report every successful reply, the first reply of the new version stamps
/// the time, and old-version replies after that count as `stale`.
///
/// Every arming has its own generation, and a worker judges a reply against the arming it
/// loaded: a worker still holding the previous arming (expecting the old version) must not
/// stamp the new one with an old reply, which would count every old reply until the real
/// switch as stale.
pub struct SwapWatch {
    pub marker: String,
    /// `generation << 2 | expected version` (0 = not armed, 1 = v1, 2 = v2).
    armed: AtomicU64,
    /// The generation whose first new reply has been seen (0: none yet).
    seen_gen: AtomicU64,
    /// `(generation, when)` of that first reply.
    first: Mutex<(u64, Option<Instant>)>,
    pub stale: Counter,
    pub v1_replies: Counter,
    pub v2_replies: Counter,
}

impl SwapWatch {
    pub fn new(marker: &str) -> Self {
        Self {
            marker: marker.to_string(),
            armed: AtomicU64::new(0),
            seen_gen: AtomicU64::new(0),
            first: Mutex::new((0, None)),
            stale: Counter::default(),
            v1_replies: Counter::default(),
            v2_replies: Counter::default(),
        }
    }
    pub fn arm(&self, v2: bool) {
        let generation = (self.armed.load(Acquire) >> 2) + 1;
        self.armed.store(generation << 2 | if v2 { 2 } else { 1 }, Release);
    }
    /// When the first reply of the armed version was seen.
    pub fn seen_at(&self) -> Option<Instant> {
        let generation = self.armed.load(Acquire) >> 2;
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.0 == generation { first.1 } else { None }
    }
    fn observe(&self, raw: &str, now: Instant) {
        self.judge(self.armed.load(Acquire), raw, now);
    }
    /// One reply, against the arming `armed` the worker loaded (maybe no longer current).
    fn judge(&self, armed: u64, raw: &str, now: Instant) {
        let v2 = raw.contains(self.marker.as_str());
        if v2 { &self.v2_replies } else { &self.v1_replies }.add(1);
        let (generation, expect) = (armed >> 2, armed & 3);
        if expect == 0 {
            return;
        }
        if (expect == 2) == v2 {
            if self.seen_gen.load(Acquire) != generation {
                let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
                // Still the same arming, and nobody stamped it meanwhile.
                if self.armed.load(Acquire) == armed && first.0 != generation {
                    *first = (generation, Some(now));
                    self.seen_gen.store(generation, Release);
                }
            }
        } else if self.seen_gen.load(Acquire) == generation {
            self.stale.add(1);
        }
    }
}

/// One connection's requests in flight: `(seq, sent at)`, oldest first.
struct Outstanding {
    out: VecDeque<(u64, Instant)>,
    /// Next request's sequence number, which is also how many were sent.
    seq: u64,
    /// Text of the last request, reused: no allocation per request.
    buf: String,
}

impl Outstanding {
    /// Queues request `seq` (`{"event":E,"data":{"n":seq}}`) on `ws`, sent at the next flush.
    fn send(&mut self, ws: &mut RawWs, event: &str, now: Instant) {
        use std::fmt::Write;
        self.buf.clear();
        let _ = write!(self.buf, "{{\"event\":\"{event}\",\"data\":{{\"n\":{}}}}}", self.seq);
        ws.feed_text(&self.buf);
        self.out.push_back((self.seq, now));
        self.seq += 1;
    }
}

impl Load {
    /// When the worker must next look at the clock without a reply: the oldest request's
    /// timeout, or the end of the window (after it, of the drain), whichever comes first.
    fn deadline(&self, oldest: Option<Instant>, now: Instant) -> Instant {
        let end = self.end();
        let mut stop = if now >= end { end + self.drain } else { end };
        if let Some(turn) = self.next_turn(now) {
            stop = stop.min(turn);
        }
        oldest.map_or(stop, |t| (t + self.req_timeout).min(stop)).max(now)
    }
}

/// Runs one connection's closed loop until the end of the window plus drain, then closes it.
pub async fn echo_worker(ws: Ws, id: usize, ld: Arc<Load>) {
    let mut ws = RawWs::from_ws(ws, (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut hist = [LocalHist::new(&ld.hists[0], id), LocalHist::new(&ld.hists[1], id)];
    let mut ok = [0u64; 2];
    let mut per_window: Vec<u64> = Vec::new();
    let (mut replies, mut others) = (0u64, 0u64);
    let mut reqs = Outstanding { out: VecDeque::with_capacity(ld.inflight), seq: 0, buf: String::with_capacity(64) };
    let mut alive = true;

    // Fill the window (in a rotation, at this load's first turn).
    if ld.may_send(Instant::now()) {
        for _ in 0..ld.inflight {
            reqs.send(&mut ws, &ld.event, Instant::now());
        }
    }
    // One timer for the whole loop, re-armed only when it fires or the window ends (a timer
    // per wait would cost the generator a timer-wheel insert and removal per message).
    let mut draining = false;
    let mut timer =
        Box::pin(tokio::time::sleep_until(ld.deadline(reqs.out.front().map(|x| x.1), Instant::now()).into()));

    loop {
        let now = Instant::now();
        let end = ld.end();
        let ended = now >= end;
        if ended && reqs.out.is_empty() {
            break;
        }
        if ended && !draining {
            // The end may have moved (swap ends early): wait for stragglers only the drain.
            draining = true;
            timer.as_mut().reset(ld.deadline(reqs.out.front().map(|x| x.1), now).into());
        }
        // A reply already buffered is taken without a syscall; only when none is, the
        // requests queued so far go out in one write and we wait (batches writes).
        // `None`: the timer fired first.
        let next = match ws.try_next() {
            Ok(None) => {
                if let Err(e) = ws.flush().await {
                    ld.errors.one(ErrKind::Closed, || format!("send: {e}"));
                    alive = false;
                    break;
                }
                tokio::select! {
                    biased;
                    m = ws.next() => Some(m),
                    () = &mut timer => None,
                }
            }
            r => Some(r),
        };
        let msg = match next {
            None => {
                // A deadline: expire requests past their timeout, stop after the drain.
                let now = Instant::now();
                let mut expired = 0;
                while reqs.out.front().is_some_and(|x| now >= x.1 + ld.req_timeout) {
                    reqs.out.pop_front();
                    expired += 1;
                }
                timer.as_mut().reset(ld.deadline(reqs.out.front().map(|x| x.1), now).into());
                ld.missing.add(expired);
                ld.errors.add(ErrKind::Timeout, expired, || format!("no reply within {:?}", ld.req_timeout));
                let end = ld.end();
                if now >= end + ld.drain {
                    let n = reqs.out.len() as u64;
                    ld.missing.add(n);
                    ld.errors.add(ErrKind::Timeout, n, || "no reply by the end of the drain".into());
                    reqs.out.clear();
                    break;
                }
                if now < end && ld.may_send(now) {
                    while reqs.out.len() < ld.inflight {
                        reqs.send(&mut ws, &ld.event, Instant::now());
                    }
                }
                continue;
            }
            Some(Ok(None)) => {
                ld.errors.one(ErrKind::Closed, || "connection closed by the server".into());
                alive = false;
                break;
            }
            Some(Err(e)) => {
                ld.errors.one(ErrKind::Closed, || format!("read: {e}"));
                alive = false;
                break;
            }
            Some(Ok(Some(m))) => m,
        };
        let t = match msg {
            Incoming::Text(t) => t,
            Incoming::Close(c) => {
                ld.errors.one(ErrKind::Closed, || format!("close frame from the server: {c:?}"));
                alive = false;
                break;
            }
        };
        let now = Instant::now();
        let Some(f) = Frame::parse(&t) else {
            ld.errors.one(ErrKind::Other, || format!("bad json: {}", &t[..t.len().min(200)]));
            continue;
        };
        if f.ok() && f.event() != ld.event {
            others += 1; // a push, not a reply
            continue;
        }
        let idx = match find_num(&t, "n") {
            Some(n) => reqs.out.iter().position(|x| x.0 == n),
            None if !reqs.out.is_empty() => Some(0), // no id in the reply: assume FIFO
            None => None,
        };
        let Some(idx) = idx else {
            if f.ok() {
                others += 1; // late reply to a request already counted as timed out
            } else {
                ld.errors.one(ErrKind::Frame, || t.to_string());
            }
            continue;
        };
        let (_, t0) = reqs.out.remove(idx).unwrap();
        if !f.ok() {
            ld.errors.one(ErrKind::Frame, || t.to_string());
        } else {
            replies += 1;
            if now >= ld.measure_start
                && now < end
                && let Some(p) = ld.phase(now)
            {
                ok[p] += 1;
                hist[p].record(now - t0);
                if ld.rotation.is_some() {
                    let w = ld.window_index(now);
                    if per_window.len() <= w {
                        per_window.resize(w + 1, 0);
                    }
                    per_window[w] += 1;
                }
            }
            if let Some(sw) = &ld.swap {
                sw.observe(&t, now);
            }
        }
        if now < end && ld.may_send(now) {
            reqs.send(&mut ws, &ld.event, now);
        }
    }
    if !alive {
        ld.missing.add(reqs.out.len() as u64);
    }
    ld.ok[0].add(ok[0]);
    ld.ok[1].add(ok[1]);
    if !per_window.is_empty() {
        let mut all = ld.per_window.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() < per_window.len() {
            all.resize(per_window.len(), 0);
        }
        all.iter_mut().zip(&per_window).for_each(|(a, b)| *a += b);
    }
    ld.sent.add(reqs.seq);
    ld.replies.add(replies);
    ld.others.add(others);
    drop(hist);
    if alive {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close()).await;
    }
}

#[cfg(test)]
mod swap_watch_tests {
    use super::*;

    const V2: &str = r#"{"v":2}"#;
    const V1: &str = r#"{"v":1}"#;

    #[test]
    fn an_old_reply_judged_against_the_previous_arming_does_not_stamp_the_new_one() {
        let sw = SwapWatch::new(r#""v":2"#);
        let t = Instant::now();
        sw.arm(false);
        sw.observe(V1, t);
        assert!(sw.seen_at().is_some());
        // A worker loads the arming (v1 expected), then the driver arms for v2, then the
        // worker judges a v1 reply against what it loaded.
        let loaded = sw.armed.load(Acquire);
        sw.arm(true);
        assert!(sw.seen_at().is_none());
        sw.judge(loaded, V1, t);
        assert!(sw.seen_at().is_none(), "an old reply stamped the new version");
        sw.observe(V1, t);
        assert_eq!(sw.stale.get(), 0, "nothing is stale before the new version answers");
        sw.observe(V2, t);
        assert!(sw.seen_at().is_some());
        sw.observe(V1, t);
        assert_eq!(sw.stale.get(), 1);
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;

    #[test]
    fn a_load_in_a_rotation_sends_and_counts_only_in_its_own_windows_past_the_guard() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let mut ld = Load::new("echo", 1, s(4), s(8), Arc::new(Errors::default()));
        let base = Instant::now() + s(1);
        ld.rotate(base, Rotation { period: s(2), me: 1, of: 2 });
        assert_eq!(ld.measure_start, base + s(4));
        // Windows [2,4), [6,8), [10,12) are this load's; [4,12) is measured.
        assert!(!ld.may_send(base + s(1)));
        assert!(ld.may_send(base + ms(2100)));
        assert_eq!(ld.next_turn(base + s(1)), Some(base + s(2)));
        assert_eq!(ld.next_turn(base + ms(2500)), Some(base + s(6)));
        assert_eq!(ld.phase(base + ms(6100)), None, "guard band");
        assert_eq!(ld.phase(base + ms(6300)), Some(0));
        assert_eq!(ld.phase(base + ms(8500)), None, "another load's window");
        assert_eq!(ld.window(0), (s(2) - ALT_GUARD) * 2);
        assert_eq!(ld.window_index(base + ms(6300)), 3);
    }
}
