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
}
