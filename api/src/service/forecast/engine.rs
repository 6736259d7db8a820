//! The Monte Carlo simulations of DESIGN §3.8, on a sample of daily
//! throughputs already read from the database. Pure and deterministic: the
//! same sample, inputs and seed give the same answer on every machine and
//! database, because the only randomness is a seeded SplitMix64 generator.

/// Trials when the caller names none.
pub const DEFAULT_TRIALS: u32 = 10_000;
/// The most trials one forecast may run.
pub const MAX_TRIALS: u32 = 100_000;
/// Seed when the caller names none: a dashboard refreshed with the same data
/// shows the same dates, not numbers that jitter from one load to the next.
pub const DEFAULT_SEED: u64 = 1;
/// A "when" trial that has not finished after this many drawn days (ten
/// years) stops there and counts as later than every date it could report.
pub const HORIZON_DAYS: u32 = 3_650;

/// The percentiles a forecast reports, in percent.
const LEVELS: [u64; 3] = [50, 85, 95];

/// SplitMix64 (Steele, Lea and Flood, 2014): 64 bits of state, passes
/// BigCrush, and is the same sequence everywhere for a seed.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (`n` > 0) by multiply-and-shift (Lemire,
    /// 2019), without the modulo's cost.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The answer to "when will `remaining` items be done?", in days after
/// `asOf`.
#[derive(Clone, Debug, PartialEq)]
pub struct When {
    /// Days by which 50 %, 85 % and 95 % of the trials finished; `None`
    /// when the sample completed nothing, or when that share of trials ran
    /// past [`HORIZON_DAYS`].
    pub days: [Option<u32>; 3],
    /// The share of trials finished within `target_days` (when asked).
    pub probability: Option<f64>,
}

/// The answer to "how many items in `days` days?".
#[derive(Clone, Debug, PartialEq)]
pub struct HowMany {
    /// The counts that 50 %, 85 % and 95 % of the trials reach at least;
    /// `None` when the sample is empty (no days).
    pub counts: [Option<u64>; 3],
}

/// "When": each trial draws days of `sample` uniformly with replacement,
/// adding their throughput until the sum reaches `remaining`; its result is
/// the number of days drawn. Percentiles by nearest rank (the ⌈q·T⌉-th
/// smallest of T trials). `target_days`, when given, is the whole days from
/// `asOf` to the target date (negative: before `asOf`).
pub fn when(
    sample: &[u32],
    remaining: u64,
    trials: u32,
    seed: u64,
    target_days: Option<i64>,
) -> When {
    if remaining == 0 {
        return When {
            days: [Some(0); 3],
            probability: target_days.map(|_| 1.0),
        };
    }
    if sample.iter().all(|&n| n == 0) || trials == 0 {
        return When {
            days: [None; 3],
            probability: None,
        };
    }
    let mut rng = SplitMix64::new(seed);
    // Trials finished after d days, d ≤ HORIZON_DAYS; the last slot holds
    // those still running at the horizon.
    let mut finished = vec![0u32; HORIZON_DAYS as usize + 2];
    for _ in 0..trials {
        let mut sum = 0u64;
        let mut days = 0u32;
        while sum < remaining && days <= HORIZON_DAYS {
            sum += u64::from(sample[rng.below(sample.len())]);
            days += 1;
        }
        let slot = if sum >= remaining {
            days as usize
        } else {
            HORIZON_DAYS as usize + 1
        };
        finished[slot] += 1;
    }
    let total = u64::from(trials);
    let days = LEVELS.map(|q| {
        // ⌈q·T⌉ with q in percent, at least the first trial.
        let rank = (q * total).div_ceil(100).max(1);
        nth_day(&finished, rank).filter(|&d| d <= HORIZON_DAYS)
    });
    let probability = target_days.map(|t| {
        let done: u64 = if t < 0 {
            0
        } else {
            let last = usize::try_from(t)
                .unwrap_or(usize::MAX)
                .min(HORIZON_DAYS as usize);
            finished[..=last].iter().map(|&n| u64::from(n)).sum()
        };
        done as f64 / total as f64
    });
    When { days, probability }
}

/// The day of the `rank`-th smallest trial (1-based) in a histogram.
fn nth_day(finished: &[u32], rank: u64) -> Option<u32> {
    let mut seen = 0u64;
    for (day, &n) in finished.iter().enumerate() {
        seen += u64::from(n);
        if seen >= rank {
            return u32::try_from(day).ok();
        }
    }
    None
}

/// "How many": each trial sums `days` draws of `sample`; the counts that
/// q of the trials reach at least are the (⌊(1−q)·T⌋+1)-th smallest sums.
pub fn how_many(sample: &[u32], days: u32, trials: u32, seed: u64) -> HowMany {
    if sample.is_empty() || trials == 0 {
        return HowMany { counts: [None; 3] };
    }
    let mut rng = SplitMix64::new(seed);
    let mut sums: Vec<u64> = (0..trials)
        .map(|_| {
            (0..days)
                .map(|_| u64::from(sample[rng.below(sample.len())]))
                .sum()
        })
        .collect();
    sums.sort_unstable();
    let total = u64::from(trials);
    let counts = LEVELS.map(|q| {
        let rank = (100 - q) * total / 100 + 1;
        usize::try_from(rank - 1)
            .ok()
            .and_then(|i| sums.get(i))
            .copied()
    });
    HowMany { counts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_throughput_makes_every_percentile_exact() {
        // Three a day, 30 left: ten days in every trial.
        let w = when(&[3; 90], 30, 10_000, 7, Some(10));
        assert_eq!(w.days, [Some(10); 3]);
        assert_eq!(w.probability, Some(1.0));
        // 31 left: the eleventh day finishes it.
        let w = when(&[3; 90], 31, 10_000, 7, Some(10));
        assert_eq!(w.days, [Some(11); 3]);
        assert_eq!(w.probability, Some(0.0));
        let h = how_many(&[3; 90], 14, 10_000, 7);
        assert_eq!(h.counts, [Some(42); 3]);
    }

    #[test]
    fn an_empty_sample_gives_nothing_and_ends() {
        let w = when(&[0; 90], 5, 100_000, 1, Some(30));
        assert_eq!(w.days, [None; 3]);
        assert_eq!(w.probability, None);
        assert_eq!(how_many(&[], 10, 100, 1).counts, [None; 3]);
        // Days with no completion are still days: the sum is zero.
        assert_eq!(how_many(&[0; 90], 10, 100, 1).counts, [Some(0); 3]);
    }

    #[test]
    fn nothing_remaining_is_done_at_as_of() {
        let w = when(&[0; 90], 0, 10_000, 1, Some(-3));
        assert_eq!(w.days, [Some(0); 3]);
        assert_eq!(w.probability, Some(1.0));
    }

    #[test]
    fn nearest_rank_on_a_two_valued_sample() {
        // Two days in three finish one item, the third none: a trial for
        // one item lasts more than k days with probability 3^-k, so 66.7 %
        // finish on day 1, 88.9 % by day 2 and 96.3 % by day 3, and the
        // nearest ranks of 50 %, 85 % and 95 % are days 1, 2 and 3.
        let sample: Vec<u32> = (0..90).map(|d| u32::from(d % 3 != 0)).collect();
        let w = when(&sample, 1, 100_000, 3, Some(1));
        assert_eq!(w.days, [Some(1), Some(2), Some(3)]);
        let p = w.probability.unwrap();
        assert!((p - 2.0 / 3.0).abs() < 0.01, "{p}");
    }

    #[test]
    fn percentiles_are_monotone_on_irregular_data() {
        let mut rng = SplitMix64::new(99);
        for case in 0..200 {
            let len = 1 + rng.below(120);
            let sample: Vec<u32> = (0..len)
                .map(|_| {
                    if rng.below(3) == 0 {
                        rng.below(9) as u32
                    } else {
                        0
                    }
                })
                .collect();
            let remaining = 1 + rng.below(60) as u64;
            let w = when(&sample, remaining, 2_000, case, None);
            let days: Vec<u32> = w.days.iter().flatten().copied().collect();
            assert!(days.windows(2).all(|p| p[0] <= p[1]), "{w:?}");
            let h = how_many(&sample, 1 + rng.below(60) as u32, 2_000, case);
            let counts: Vec<u64> = h.counts.iter().flatten().copied().collect();
            // More confidence, a smaller count reached.
            assert!(counts.windows(2).all(|p| p[0] >= p[1]), "{h:?}");
        }
    }

    #[test]
    fn a_seed_reproduces_an_answer() {
        let sample = [0, 2, 5, 1, 0, 0, 3, 7, 1, 0];
        let a = when(&sample, 40, 10_000, 42, Some(20));
        assert_eq!(a, when(&sample, 40, 10_000, 42, Some(20)));
        assert_ne!(a, when(&sample, 40, 10_000, 43, Some(20)));
    }

    #[test]
    fn a_trial_past_the_horizon_stops() {
        // One completion in 90 days and 1,000 left: every trial passes ten
        // years, so no date is reported and nothing is done by the target.
        let mut sample = [0u32; 90];
        sample[0] = 1;
        let w = when(&sample, 1_000, 1_000, 5, Some(365));
        assert_eq!(w.days, [None; 3]);
        assert_eq!(w.probability, Some(0.0));
    }

    #[test]
    fn the_generator_is_splitmix64() {
        // The reference sequence for seed 1234567.
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }
}
