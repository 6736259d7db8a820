//! What one item's transition history says about its flow (DESIGN §3):
//! start, completion as of an instant, and the time it was active between.

use chrono::{DateTime, Utc};

/// One transition: when, and the state it entered with its category.
#[derive(Clone, Debug)]
pub struct Step {
    pub at: DateTime<Utc>,
    pub state: String,
    pub category: String,
}

/// An item's flow facts as of a window's end.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// First entry into an `ACTIVE` or `WAITING` state.
    pub start: Option<DateTime<Utc>>,
    /// Last entry into a `DONE` state, when the item is still in one.
    pub completion: Option<DateTime<Utc>>,
    /// Seconds in `ACTIVE` states between start and completion, every visit
    /// counted (zero without both).
    pub active_seconds: f64,
    /// In an `ACTIVE` or `WAITING` state at the end.
    pub in_progress: bool,
}

const ACTIVE: &str = "ACTIVE";
const WAITING: &str = "WAITING";
const DONE: &str = "DONE";

/// Seconds between two instants, each truncated to the millisecond (as the
/// stored flow facts are).
fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to.timestamp_millis() - from.timestamp_millis()) as f64 / 1000.0
}

/// Facts of the history `steps` (ordered by time, then by arrival), counting
/// only transitions before `end`.
pub fn facts(steps: &[Step], end: DateTime<Utc>) -> Facts {
    let steps: Vec<&Step> = steps.iter().filter(|s| s.at < end).collect();
    let start = steps
        .iter()
        .find(|s| s.category == ACTIVE || s.category == WAITING)
        .map(|s| s.at);
    let completion = match steps.last() {
        Some(last) if last.category == DONE => steps
            .iter()
            .rev()
            .find(|s| s.category == DONE)
            .map(|s| s.at),
        _ => None,
    };
    let active_seconds = match (start, completion) {
        (Some(from), Some(to)) => steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.category == ACTIVE)
            .map(|(i, s)| {
                let leave = steps.get(i + 1).map_or(to, |n| n.at);
                let (a, b) = (s.at.max(from), leave.min(to));
                if b > a { seconds(a, b) } else { 0.0 }
            })
            .sum(),
        _ => 0.0,
    };
    let in_progress = steps
        .last()
        .is_some_and(|s| s.category == ACTIVE || s.category == WAITING);
    Facts {
        start,
        completion,
        active_seconds,
        in_progress,
    }
}

/// Seconds between two instants.
pub fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    seconds(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        format!("2026-03-{day:02}T{hour:02}:00:00Z")
            .parse()
            .unwrap()
    }

    fn steps(list: &[(u32, u32, &str)]) -> Vec<Step> {
        list.iter()
            .map(|(d, h, c)| Step {
                at: t(*d, *h),
                state: format!("S-{c}"),
                category: (*c).to_owned(),
            })
            .collect()
    }

    #[test]
    fn re_entered_and_reopened() {
        // Active 1st 0h–2nd 0h (24 h), waiting to 3rd, active again to 4th
        // 0h (24 h), done on the 4th, reopened on the 5th (active 12 h),
        // done again on the 5th at 12h.
        let h = steps(&[
            (1, 0, "NEW"),
            (1, 0, "ACTIVE"),
            (2, 0, "WAITING"),
            (3, 0, "ACTIVE"),
            (4, 0, "DONE"),
            (5, 0, "ACTIVE"),
            (5, 12, "DONE"),
        ]);
        let f = facts(&h, t(10, 0));
        assert_eq!(f.start, Some(t(1, 0)));
        assert_eq!(f.completion, Some(t(5, 12)));
        assert_eq!(f.active_seconds, 60.0 * 3600.0);
        // As of the 5th at 6h it is in progress again: not complete.
        assert_eq!(facts(&h, t(5, 6)).completion, None);
        // As of the 4th at 6h it was complete on the 4th.
        let early = facts(&h, t(4, 6));
        assert_eq!(early.completion, Some(t(4, 0)));
        assert_eq!(early.active_seconds, 48.0 * 3600.0);
        assert!(facts(&h, t(5, 6)).in_progress);
    }

    #[test]
    fn canceled_and_never_started() {
        let canceled = steps(&[(1, 0, "NEW"), (2, 0, "ACTIVE"), (3, 0, "CANCELED")]);
        assert_eq!(facts(&canceled, t(9, 0)).completion, None);
        let straight = steps(&[(1, 0, "NEW"), (2, 0, "DONE")]);
        let f = facts(&straight, t(9, 0));
        assert_eq!((f.start, f.completion), (None, Some(t(2, 0))));
        assert_eq!(f.active_seconds, 0.0);
    }
}
