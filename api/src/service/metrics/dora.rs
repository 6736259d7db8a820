//! DORA performance levels of a unit's delivery metrics.
//!
//! The thresholds are those of the 2023 Accelerate State of DevOps report
//! (DORA, Google Cloud, "Accelerate State of DevOps Report 2023", the
//! software delivery performance table), as Apache DevLake's DORA dashboard
//! also applies them:
//!
//! | metric | elite | high | medium | low |
//! |---|---|---|---|---|
//! | deployment frequency | on demand (daily or more) | daily to weekly | weekly to monthly | less than monthly |
//! | lead time for changes (median) | under a day | a day to a week | a week to a month | over a month |
//! | change failure rate | up to 5 % | up to 10 % | up to 15 % | over 15 % |
//! | time to restore (median) | under an hour | under a day | a day to a week | over a week |
//!
//! A level is `None` when the window holds nothing to judge it by: no
//! change deployed, no deployment, no incident resolved. Zero deployments
//! is itself a measure (`Low` frequency).

use super::delivery::DeliveryMetrics;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Elite,
    High,
    Medium,
    Low,
}

/// The four levels of one window's delivery metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Performance {
    pub deployment_frequency: Option<Level>,
    pub lead_time_for_changes: Option<Level>,
    pub change_failure_rate: Option<Level>,
    pub time_to_restore: Option<Level>,
}

const HOUR: f64 = 3_600.0;
const DAY: f64 = 24.0 * HOUR;
const WEEK: f64 = 7.0 * DAY;
const MONTH: f64 = 30.0 * DAY;

/// The level of a value, given the upper bounds of elite, high and medium
/// (a value at a bound is in the better level).
fn level(value: f64, bounds: [f64; 3]) -> Level {
    if value <= bounds[0] {
        Level::Elite
    } else if value <= bounds[1] {
        Level::High
    } else if value <= bounds[2] {
        Level::Medium
    } else {
        Level::Low
    }
}

/// Deployments per day: elite at one a day or more, high at one a week,
/// medium at one a month.
fn frequency(per_day: f64) -> Level {
    if per_day >= 1.0 {
        Level::Elite
    } else if per_day >= 1.0 / 7.0 {
        Level::High
    } else if per_day >= 1.0 / 30.0 {
        Level::Medium
    } else {
        Level::Low
    }
}

impl Performance {
    pub fn of(m: &DeliveryMetrics) -> Self {
        let under = |bounds: [f64; 3]| move |v: f64| level(v, bounds);
        Self {
            deployment_frequency: Some(frequency(m.deployment_frequency)),
            lead_time_for_changes: m.lead_time_for_changes.p50.map(under([DAY, WEEK, MONTH])),
            change_failure_rate: m.change_failure_rate.value().map(under([0.05, 0.10, 0.15])),
            time_to_restore: m.time_to_restore.p50.map(under([HOUR, DAY, WEEK])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_fall_in_the_better_level() {
        assert_eq!(frequency(1.0), Level::Elite);
        assert_eq!(frequency(0.99), Level::High);
        assert_eq!(frequency(1.0 / 7.0), Level::High);
        assert_eq!(frequency(0.1), Level::Medium);
        assert_eq!(frequency(1.0 / 30.0), Level::Medium);
        assert_eq!(frequency(0.0), Level::Low);
        let lead = [DAY, WEEK, MONTH];
        assert_eq!(level(23.0 * HOUR, lead), Level::Elite);
        assert_eq!(level(DAY, lead), Level::Elite);
        assert_eq!(level(3.0 * DAY, lead), Level::High);
        assert_eq!(level(20.0 * DAY, lead), Level::Medium);
        assert_eq!(level(40.0 * DAY, lead), Level::Low);
        let cfr = [0.05, 0.10, 0.15];
        assert_eq!(level(0.0, cfr), Level::Elite);
        assert_eq!(level(0.08, cfr), Level::High);
        assert_eq!(level(0.15, cfr), Level::Medium);
        assert_eq!(level(0.5, cfr), Level::Low);
    }
}
