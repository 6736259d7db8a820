//! Distributions under DESIGN §3's conventions: continuous percentiles
//! (linear interpolation between closest ranks, as PostgreSQL
//! `percentile_cont`), and nulls for an empty distribution.

/// `count`, `mean`, `p50`, `p85`, `p95`, `min`, `max` of a set of values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Distribution {
    pub count: usize,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p85: Option<f64>,
    pub p95: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Distribution {
    /// The distribution of `values` (any order).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let sum: f64 = values.iter().sum();
        Self {
            count: n,
            mean: Some(sum / n as f64),
            p50: Some(percentile(&values, 0.5)),
            p85: Some(percentile(&values, 0.85)),
            p95: Some(percentile(&values, 0.95)),
            min: values.first().copied(),
            max: values.last().copied(),
        }
    }
}

/// The percentiles every distribution reports.
pub const PERCENTILES: [f64; 3] = [0.5, 0.85, 0.95];

/// The continuous [`PERCENTILES`] of `count` values fed one at a time in
/// ascending order, keeping only the two closest ranks of each: memory does
/// not grow with `count`.
#[derive(Clone, Debug)]
pub struct RankPicker {
    /// For each percentile: the lower and upper closest ranks and the
    /// fraction between them.
    ranks: [(usize, usize, f64); 3],
    lo: [f64; 3],
    hi: [f64; 3],
    next: usize,
}

impl RankPicker {
    pub fn new(count: usize) -> Self {
        let rank = |p: f64| {
            let r = p * count.saturating_sub(1) as f64;
            (r.floor() as usize, r.ceil() as usize, r.fract())
        };
        Self {
            ranks: PERCENTILES.map(rank),
            lo: [0.0; 3],
            hi: [0.0; 3],
            next: 0,
        }
    }

    /// Takes the next value; `false` once every rank needed has been seen.
    pub fn feed(&mut self, v: f64) -> bool {
        let i = self.next;
        for (k, (l, h, _)) in self.ranks.iter().enumerate() {
            if i == *l {
                self.lo[k] = v;
            }
            if i == *h {
                self.hi[k] = v;
            }
        }
        self.next += 1;
        self.ranks.iter().any(|r| r.1 >= self.next)
    }

    /// The percentiles, in the order of [`PERCENTILES`].
    pub fn finish(&self) -> [f64; 3] {
        let mut out = [0.0; 3];
        for (k, (_, _, frac)) in self.ranks.iter().enumerate() {
            out[k] = self.lo[k] + (self.hi[k] - self.lo[k]) * frac;
        }
        out
    }
}

/// The continuous percentile `p` (0 to 1) of sorted, non-empty `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_percentiles() {
        // The public anchor: the median of 90 and 100 is 95.
        let d = Distribution::of(vec![100.0, 90.0]);
        assert_eq!(d.p50, Some(95.0));
        assert_eq!(d.count, 2);
        assert_eq!(
            (d.min, d.max, d.mean),
            (Some(90.0), Some(100.0), Some(95.0))
        );
        // numpy.percentile([1, 2, 3, 4, 10], [50, 85, 95]) = 3, 6.4, 8.8
        let d = Distribution::of(vec![4.0, 1.0, 10.0, 3.0, 2.0]);
        assert_eq!(d.p50, Some(3.0));
        assert!((d.p85.unwrap() - 6.4).abs() < 1e-12);
        assert!((d.p95.unwrap() - 8.8).abs() < 1e-12);
        let one = Distribution::of(vec![7.0]);
        assert_eq!((one.p50, one.p95), (Some(7.0), Some(7.0)));
        assert_eq!(Distribution::of(Vec::new()), Distribution::default());
    }

    #[test]
    fn rank_picker_matches_the_sorted_percentiles() {
        for n in 1..40usize {
            let values: Vec<f64> = (0..n).map(|i| ((i * 37) % 101) as f64).collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let mut picker = RankPicker::new(n);
            for v in &sorted {
                if !picker.feed(*v) {
                    break;
                }
            }
            let d = Distribution::of(values);
            assert_eq!(
                picker.finish(),
                [d.p50.unwrap(), d.p85.unwrap(), d.p95.unwrap()]
            );
        }
    }
}
