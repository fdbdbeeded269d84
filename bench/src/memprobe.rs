//! A memory-latency probe: how long one dependent load takes when the working set is bigger
//! than a core's L2 but fits the shared L3.
//!
//! Why it exists: on a shared VM the last-level cache is shared with other tenants, and how
//! much of it they use changes from minute to minute. Loopback WebSocket echo at 1,000
//! connections touches megabytes per round (socket buffers, skbs, per-connection state), so
//! its throughput moves with that; a compute-only loop does not. `bench-all.sh` runs this probe
//! before every measured window and stores the number beside the result, so a slow run can be
//! told apart from a slow server. The probe owns no sockets and must stay short (well under a
//! second) so it does not become part of what it measures.

use std::hint::black_box;
use std::time::Instant;

/// Result of one probe.
#[derive(Debug, serde::Serialize)]
pub struct Probe {
    /// Working set, MiB.
    pub mib: usize,
    /// Median over `reps` of the mean time per dependent load, nanoseconds.
    pub ns_per_load: f64,
    /// The fastest and slowest rep.
    pub min_ns: f64,
    pub max_ns: f64,
}

/// A random single-cycle permutation over `mib` MiB of `u32`s (Sattolo's algorithm), so every
/// load depends on the previous one and the hardware prefetcher cannot help.
pub struct Chase {
    next: Vec<u32>,
    at: u32,
}

impl Chase {
    pub fn new(mib: usize) -> Self {
        let n = (mib.max(1) << 20) / std::mem::size_of::<u32>();
        let mut next: Vec<u32> = (0..n as u32).collect();
        // xorshift64*: a fixed seed is fine, the point is an order the prefetcher cannot follow.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in (1..n).rev() {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let j = (s.wrapping_mul(0x2545_F491_4F6C_DD1D) % i as u64) as usize;
            next.swap(i, j);
        }
        let mut c = Self { next, at: 0 };
        // One untimed pass to fault the pages in.
        c.sample(n);
        c
    }

    /// Mean nanoseconds per dependent load over `steps` loads.
    pub fn sample(&mut self, steps: usize) -> f64 {
        let t = Instant::now();
        let mut at = self.at;
        for _ in 0..steps.max(1) {
            at = self.next[at as usize];
        }
        self.at = black_box(at);
        t.elapsed().as_nanos() as f64 / steps.max(1) as f64
    }
}

/// `reps` samples of `steps` loads each over `mib` MiB; the median is the result.
pub fn run(mib: usize, steps: usize, reps: usize) -> Probe {
    let mut chase = Chase::new(mib);
    let mut times: Vec<f64> = (0..reps.max(1)).map(|_| chase.sample(steps)).collect();
    times.sort_by(f64::total_cmp);
    Probe { mib, ns_per_load: times[times.len() / 2], min_ns: times[0], max_ns: times[times.len() - 1] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_load_of_the_chase_visits_a_new_slot_until_the_cycle_closes() {
        let mut c = Chase::new(1);
        let n = c.next.len();
        let mut seen = vec![false; n];
        let mut at = 0u32;
        for _ in 0..n {
            assert!(!seen[at as usize], "slot {at} visited twice before the cycle closed");
            seen[at as usize] = true;
            at = c.next[at as usize];
        }
        assert_eq!(at, 0, "one cycle through every slot");
        assert!(c.sample(1000) > 0.0);
    }

    #[test]
    fn a_probe_reports_a_positive_ordered_latency() {
        let p = run(1, 10_000, 3);
        assert!(p.min_ns > 0.0 && p.min_ns <= p.ns_per_load && p.ns_per_load <= p.max_ns, "{p:?}");
    }
}
