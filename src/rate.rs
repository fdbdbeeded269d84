//! A token bucket: a sustained rate with a burst. Used for each connection's frame rate and
//! each module's guest-log rate.
//!
//! It owns no clock: the caller passes `now`, so tests need not wait for time to pass. It must
//! never allocate or lock: callers keep it where its one writer is (a connection task), or
//! behind their own lock.

use std::time::Instant;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` tokens a second, up to `burst` (at least `rate`) saved; `None` for rate 0 (no
    /// limit). It starts full.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Option<Self> {
        (rate > 0).then(|| {
            let burst = f64::from(burst.max(rate));
            Self { rate: f64::from(rate), burst, tokens: burst, last: now }
        })
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes a token if one is there at `now`. A clock that goes back gives nothing.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.tokens =
            (self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut r = TokenBucket::new(10, 20, t0).unwrap();
        assert!((0..20).all(|_| r.allow(t0)), "the burst");
        assert!(!r.allow(t0), "past the burst");
        assert!(r.allow(ms(100)), "one token per 100 ms at 10/s");
        assert!(!r.allow(ms(100)));
        assert!((0..20).all(|_| r.allow(ms(60_000))), "a long pause refills the burst");
        assert!(!r.allow(ms(60_000)), "but no more than the burst");
        assert!(!r.allow(ms(59_000)), "a clock that goes back gives nothing");
    }

    #[test]
    fn the_burst_is_at_least_the_rate_and_zero_disables_the_limit() {
        let t0 = Instant::now();
        let mut r = TokenBucket::new(5, 1, t0).unwrap();
        assert!((0..5).all(|_| r.allow(t0)));
        assert!(!r.allow(t0));
        assert!(TokenBucket::new(0, 100, t0).is_none());
    }
}
