//! A small seeded generator (SplitMix64), so one `--seed` gives the same
//! fault schedule and the same traffic shape on every run.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// An independent generator for one part of the soak (a device, a lane).
    pub fn fork(&self, tag: u64) -> Self {
        let mut base = Self(self.0 ^ tag.wrapping_mul(0xbf58_476d_1ce4_e5b9));
        Self(base.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A time in `[low, high)`.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        low + (high.saturating_sub(low)).mul_f64(self.unit())
    }

    /// An exponentially distributed wait with this mean, capped at 5× it.
    pub fn exponential(&mut self, mean: Duration) -> Duration {
        let x = -(1.0 - self.unit()).ln();
        mean.mul_f64(x.min(5.0))
    }
}
