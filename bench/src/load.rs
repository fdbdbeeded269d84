//! The closed-loop request engine of echo, smoke, swap and hostile: each connection keeps K
//! requests `{"event":E,"data":{"n":seq}}` in flight and matches replies by `n`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::net::Ws;
use crate::rawws::{Incoming, RawWs};
use crate::stats::{Counter, Errors, Frame, Hist, LocalHist, find_num};

/// Hostile's alternating windows: the start of each is counted for neither phase.
pub const GUARD: Duration = Duration::from_millis(250);

pub struct Load {
    pub event: String,
    pub inflight: usize,
    pub base: Instant,
    /// Replies before this are warmup: not in throughput nor latency.
    pub measure_start: Instant,
    /// Hostile: windows of this length alternate baseline (phase 0) and attack (phase 1) from
    /// `measure_start`; the first `GUARD` of each counts for neither (attack calls still
    /// finishing, or attackers starting).
    pub alternate: Option<Duration>,
    /// End of the measured window, as nanoseconds after `base`; movable (swap ends early).
    end_ns: AtomicU64,
    /// After the end, outstanding replies are awaited this long, then counted missing.
    pub drain: Duration,
    pub req_timeout: Duration,
    pub hists: [Hist; 2],
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
            alternate: None,
            end_ns: AtomicU64::new((warmup + duration).as_nanos() as u64),
            drain: Duration::from_secs(3),
            req_timeout: Duration::from_secs(10),
            hists: [Hist::new(), Hist::new()],
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

    /// The phase a reply at `now` counts for; `None` in an alternation's guard band.
    fn phase(&self, now: Instant) -> Option<usize> {
        let Some(period) = self.alternate else { return Some(0) };
        let (t, p) = (now.saturating_duration_since(self.measure_start).as_nanos(), period.as_nanos().max(1));
        (t % p >= GUARD.as_nanos()).then_some((t / p % 2) as usize)
    }

    /// Attackers of an alternation: the next instant at or after `now` when they may send
    /// (inside an attack window, not in its last `GUARD`), so that attack calls end before the
    /// baseline window they would spill into starts counting.
    pub fn attack_send_time(&self, now: Instant) -> Instant {
        let Some(period) = self.alternate else { return now };
        if now < self.measure_start {
            return self.measure_start + period;
        }
        let k = now.saturating_duration_since(self.measure_start).as_nanos() / period.as_nanos().max(1);
        let win_start = self.measure_start + period * k as u32;
        if k % 2 == 1 && now + GUARD < win_start + period {
            now
        } else {
            win_start + period * if k % 2 == 1 { 2 } else { 1 }
        }
    }

    /// Length of the counted part of phase `p` (0 = the whole window without an alternation).
    pub fn window(&self, p: usize) -> Duration {
        let end = self.end();
        let Some(period) = self.alternate else { return end.saturating_duration_since(self.measure_start) };
        let (mut at, mut sum) = (self.measure_start + period * p as u32, Duration::ZERO);
        while at < end {
            sum += (at + period).min(end).saturating_duration_since(at + GUARD);
            at += period * 2;
        }
        sum
    }

    /// When the worker must next look at the clock without a reply: the oldest request's
    /// timeout, or the end of the window (after it, of the drain), whichever comes first.
    fn deadline(&self, oldest: Option<Instant>, now: Instant) -> Instant {
        let end = self.end();
        let stop = if now >= end { end + self.drain } else { end };
        oldest.map_or(stop, |t| (t + self.req_timeout).min(stop)).max(now)
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
    marker: String,
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
    /// Queues request `seq` on `ws`, sent at the next flush.
    fn send(&mut self, ws: &mut RawWs, event: &str, now: Instant) {
        use std::fmt::Write;
        self.buf.clear();
        let _ = write!(self.buf, "{{\"event\":\"{event}\",\"data\":{{\"n\":{}}}}}", self.seq);
        ws.feed_text(&self.buf);
        self.out.push_back((self.seq, now));
        self.seq += 1;
    }
}

/// Runs one connection's closed loop until the end of the window plus drain, then closes it.
pub async fn echo_worker(ws: Ws, id: usize, ld: Arc<Load>) {
    let mut ws = RawWs::from_ws(ws, (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut hist = [LocalHist::new(&ld.hists[0]), LocalHist::new(&ld.hists[1])];
    let mut ok = [0u64; 2];
    let (mut replies, mut others) = (0u64, 0u64);
    let mut reqs = Outstanding { out: VecDeque::with_capacity(ld.inflight), seq: 0, buf: String::with_capacity(64) };
    let mut alive = true;
    for _ in 0..ld.inflight {
        reqs.send(&mut ws, &ld.event, Instant::now());
    }
    // One timer for the whole loop, re-armed only when it fires or the window ends (a timer
    // per wait would cost the generator a timer-wheel insert and removal per message).
    let mut draining = false;
    let mut timer =
        Box::pin(tokio::time::sleep_until(ld.deadline(reqs.out.front().map(|x| x.1), Instant::now()).into()));

    loop {
        let now = Instant::now();
        let end = ld.end();
        if now >= end && reqs.out.is_empty() {
            break;
        }
        if now >= end && !draining {
            // The end may have moved (swap ends early): wait for stragglers only the drain.
            draining = true;
            timer.as_mut().reset(ld.deadline(reqs.out.front().map(|x| x.1), now).into());
        }
        // A reply already buffered is taken without a syscall; only when none is, the requests
        // queued so far go out in one write and we wait (batches writes). `None`: the timer.
        let next = match ws.try_next() {
            Ok(None) => {
                if let Err(e) = ws.flush().await {
                    ld.errors.one(|| format!("send: {e}"));
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
        let t = match next {
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
                ld.errors.add(expired, || format!("timeout: no reply within {:?}", ld.req_timeout));
                let end = ld.end();
                if now >= end + ld.drain {
                    let n = reqs.out.len() as u64;
                    ld.missing.add(n);
                    ld.errors.add(n, || "timeout: no reply by the end of the drain".into());
                    reqs.out.clear();
                    break;
                }
                while now < end && reqs.out.len() < ld.inflight {
                    reqs.send(&mut ws, &ld.event, Instant::now());
                }
                continue;
            }
            Some(Ok(Some(Incoming::Text(t)))) => t,
            Some(Ok(Some(Incoming::Close(c)))) => {
                ld.errors.one(|| format!("close frame from the server: {c:?}"));
                alive = false;
                break;
            }
            Some(Ok(None)) => {
                ld.errors.one(|| "connection closed by the server".into());
                alive = false;
                break;
            }
            Some(Err(e)) => {
                ld.errors.one(|| format!("read: {e}"));
                alive = false;
                break;
            }
        };
        let now = Instant::now();
        let Some(f) = Frame::parse(&t) else {
            ld.errors.one(|| format!("bad json: {}", &t[..t.len().min(200)]));
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
                ld.errors.one(|| t.to_string());
            }
            continue;
        };
        let (_, t0) = reqs.out.remove(idx).unwrap();
        if !f.ok() {
            ld.errors.one(|| t.to_string());
        } else {
            replies += 1;
            if now >= ld.measure_start
                && now < end
                && let Some(p) = ld.phase(now)
            {
                ok[p] += 1;
                hist[p].record(now - t0);
            }
            if let Some(sw) = &ld.swap {
                sw.observe(&t, now);
            }
        }
        if now < end {
            reqs.send(&mut ws, &ld.event, now);
        }
    }
    if !alive {
        ld.missing.add(reqs.out.len() as u64);
    }
    ld.ok[0].add(ok[0]);
    ld.ok[1].add(ok[1]);
    ld.sent.add(reqs.seq);
    ld.replies.add(replies);
    ld.others.add(others);
    drop(hist);
    if alive {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_reply_judged_against_the_previous_arming_does_not_stamp_the_new_one() {
        const V1: &str = r#"{"v":1}"#;
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
        sw.observe(r#"{"v":2}"#, t);
        assert!(sw.seen_at().is_some());
        sw.observe(V1, t);
        assert_eq!(sw.stale.get(), 1);
    }

    #[test]
    fn alternating_windows_count_past_the_guard_and_attackers_send_only_inside_theirs() {
        let (s, ms) = (Duration::from_secs, Duration::from_millis);
        let mut ld = Load::new("echo", 1, s(2), s(4), Arc::new(Errors::default()));
        ld.alternate = Some(s(1));
        let m = ld.measure_start;
        // [0,1) and [2,3) after the start are baseline, [1,2) and [3,4) attack.
        assert_eq!(ld.phase(m + ms(100)), None, "guard band");
        assert_eq!(ld.phase(m + ms(300)), Some(0));
        assert_eq!(ld.phase(m + ms(1300)), Some(1));
        assert_eq!(ld.window(0), (s(1) - GUARD) * 2);
        assert_eq!(ld.window(1), (s(1) - GUARD) * 2);
        assert_eq!(ld.attack_send_time(m - s(1)), m + s(1));
        assert_eq!(ld.attack_send_time(m + ms(500)), m + s(1));
        assert_eq!(ld.attack_send_time(m + ms(1500)), m + ms(1500));
        assert_eq!(ld.attack_send_time(m + ms(1800)), m + s(3), "the last GUARD of an attack window");
    }
}
