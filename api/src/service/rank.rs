//! Ranks: an item's position in its board column, compared as text.
//!
//! A rank is read as a base-36 fraction (`"i"` is 0.5). Appending takes the
//! next step of an 8-digit counter, leaving room between neighbours; placing
//! a card between two others takes a rank between theirs, so a move or a
//! bulk reorder rewrites the moved cards only, never the whole column.

use entity::work_item;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::error::ApiResult;

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const BASE: u32 = 36;
const WIDTH: usize = 8;
/// Gap left between appended cards.
const STEP: u64 = 1 << 20;

fn digit_value(c: u8) -> u32 {
    match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'a'..=b'z' => u32::from(c - b'a') + 10,
        // Not written by this module: sorts as the largest digit.
        _ => BASE - 1,
    }
}

fn digit(v: u32) -> char {
    char::from(DIGITS[v.min(BASE - 1) as usize])
}

/// The first [`WIDTH`] digits as a number, missing digits read as zeros.
fn prefix_value(rank: &str) -> Option<u64> {
    let mut n: u64 = 0;
    for i in 0..WIDTH {
        let b = rank.as_bytes().get(i).copied().unwrap_or(b'0');
        if !b.is_ascii_digit() && !b.is_ascii_lowercase() {
            return None;
        }
        n = n * u64::from(BASE) + u64::from(digit_value(b));
    }
    Some(n)
}

fn format(mut n: u64) -> String {
    let mut buf = [b'0'; WIDTH];
    for slot in buf.iter_mut().rev() {
        *slot = DIGITS[(n % u64::from(BASE)) as usize];
        n /= u64::from(BASE);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A rank after `last` (the column's current last rank), or the first rank of
/// an empty column.
pub fn after(last: Option<&str>) -> String {
    let max = u64::from(BASE).pow(WIDTH as u32) - 1;
    match last {
        None => format(STEP),
        Some(l) => match prefix_value(l) {
            Some(n) if n + STEP < max => format(n + STEP),
            // The counter is exhausted (or the rank is foreign): go halfway
            // to the end instead.
            _ => between(Some(l), None),
        },
    }
}

/// A rank strictly between `lo` and `hi` (`None`: the column's start or
/// end). `lo` must sort before `hi`.
pub fn between(lo: Option<&str>, hi: Option<&str>) -> String {
    midpoint(lo.unwrap_or("").as_bytes(), hi.map(str::as_bytes))
}

fn midpoint(lo: &[u8], hi: Option<&[u8]>) -> String {
    let at = |s: &[u8], i: usize| s.get(i).map_or(0, |c| digit_value(*c));
    if let Some(hi) = hi {
        // Keep the common prefix, reading missing digits of `lo` as zeros.
        let mut n = 0;
        while n < hi.len() && at(lo, n) == digit_value(hi[n]) {
            n += 1;
        }
        if n > 0 {
            let head: String = hi[..n].iter().map(|c| char::from(*c)).collect();
            let rest_lo = lo.get(n..).unwrap_or(&[]);
            return head + &midpoint(rest_lo, Some(&hi[n..]));
        }
    }
    let a = at(lo, 0);
    let b = hi.map_or(BASE, |h| at(h, 0).max(if h.is_empty() { BASE } else { 0 }));
    if b > a + 1 {
        return digit(a + (b - a).div_ceil(2)).to_string();
    }
    match hi {
        // `hi` has more non-zero digits: its first digit alone sorts
        // between (with only zeros after it, it would equal `hi`).
        Some(h) if h.len() > 1 && h[1..].iter().any(|c| *c != b'0') => digit(b).to_string(),
        _ => {
            let rest_lo = lo.get(1..).unwrap_or(&[]);
            format!("{}{}", digit(a), midpoint(rest_lo, None))
        }
    }
}

/// Longest rank written; past it the column is re-spaced (the column holds
/// 64 characters).
pub const MAX_LEN: usize = 48;

/// Whether `ranks` ascend strictly between `lo` and `hi` and are short
/// enough to store. False when the gap is used up (many insertions at one
/// place) or when `lo` and `hi` are equal (two cards appended at once).
pub fn fits(lo: Option<&str>, hi: Option<&str>, ranks: &[String]) -> bool {
    let mut prev = lo;
    for r in ranks {
        if r.len() > MAX_LEN || prev.is_some_and(|p| p >= r.as_str()) {
            return false;
        }
        prev = Some(r);
    }
    match (prev, hi) {
        (Some(p), Some(h)) => p < h,
        _ => true,
    }
}

/// Ranks for a column of `n` cards, evenly spaced from its start.
pub fn evenly(n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(n);
    for _ in 0..n {
        let next = after(out.last().map(String::as_str));
        out.push(next);
    }
    out
}

/// `n` ascending ranks strictly between `lo` and `hi`, spread by bisection
/// so that their length grows with the logarithm of `n`.
pub fn spread(lo: Option<&str>, hi: Option<&str>, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    fill(lo.map(str::to_owned), hi.map(str::to_owned), n, &mut out);
    out
}

fn fill(lo: Option<String>, hi: Option<String>, n: usize, out: &mut Vec<String>) {
    if n == 0 {
        return;
    }
    let mid = between(lo.as_deref(), hi.as_deref());
    let left = (n - 1) / 2;
    fill(lo, Some(mid.clone()), left, out);
    out.push(mid.clone());
    fill(Some(mid), hi, n - 1 - left, out);
}

/// The last rank in `state`'s column of `unit_id`, if the column has any card.
pub(crate) async fn last_rank(
    db: &impl ConnectionTrait,
    unit_id: i64,
    state: &str,
) -> ApiResult<Option<String>> {
    Ok(work_item::Entity::find()
        .select_only()
        .column(work_item::Column::Rank)
        .filter(work_item::Column::UnitId.eq(unit_id))
        .filter(work_item::Column::State.eq(state))
        .order_by_desc(work_item::Column::Rank)
        .into_tuple::<String>()
        .one(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_ranks_sort_in_order() {
        let mut last: Option<String> = None;
        for _ in 0..1000 {
            let r = after(last.as_deref());
            if let Some(l) = &last {
                assert!(r.as_str() > l.as_str());
            }
            assert_eq!(r.len(), WIDTH);
            last = Some(r);
        }
    }

    #[test]
    fn after_a_short_or_exhausted_rank_still_sorts_after_it() {
        for last in ["i", "0000mls", "zzzzzzzz", "zzzzzzzzzz"] {
            let r = after(Some(last));
            assert!(r.as_str() > last, "{r} after {last}");
        }
    }

    #[test]
    fn between_sorts_strictly_inside() {
        let cases = [
            (None, None),
            (None, Some("00100000")),
            (Some("00100000"), None),
            (Some("00100000"), Some("00100001")),
            (Some("00100000"), Some("001000001")),
            (Some("a"), Some("b")),
            (Some("a"), Some("a1")),
            (Some("az"), Some("b")),
            (Some("x0"), Some("x01")),
            (Some("zz"), None),
            (None, Some("01")),
        ];
        for (lo, hi) in cases {
            let m = between(lo, hi);
            if let Some(lo) = lo {
                assert!(m.as_str() > lo, "{m} > {lo}");
            }
            if let Some(hi) = hi {
                assert!(m.as_str() < hi, "{m} < {hi}");
            }
            assert!(!m.ends_with('0'), "{m} has a trailing zero");
        }
    }

    #[test]
    fn repeated_insertion_at_one_place_keeps_order() {
        // Always inserting right after the first card: the worst case.
        let first = after(None);
        let second = after(Some(&first));
        let mut hi = second.clone();
        for _ in 0..200 {
            let m = between(Some(&first), Some(&hi));
            assert!(m > first && m < hi);
            hi = m;
        }
        assert!(hi.len() < 80, "{} characters", hi.len());
    }

    #[test]
    fn never_lands_on_a_rank_equal_to_its_bound() {
        // An appended rank ending in zeros, approached from below again and
        // again: every rank stays strictly below it.
        let hi = "0005m9s0".to_owned();
        let mut lo = "0005m9r0".to_owned();
        for _ in 0..100 {
            let m = between(Some(&lo), Some(&hi));
            assert!(m > lo && m < hi, "{lo} < {m} < {hi}");
            lo = m;
        }
        let mut hi2 = hi.clone();
        for _ in 0..100 {
            let m = between(Some("0005m9r0"), Some(&hi2));
            assert!(m.as_str() > "0005m9r0" && m < hi2, "{m} < {hi2}");
            hi2 = m;
        }
    }

    #[test]
    fn fits_catches_exhausted_and_equal_gaps() {
        assert!(fits(Some("a"), Some("b"), &["ai".to_owned()]));
        assert!(!fits(
            Some("a"),
            Some("a"),
            &[between(Some("a"), Some("a"))]
        ));
        assert!(!fits(None, None, &["1".repeat(MAX_LEN + 1)]));
        assert!(!fits(
            Some("a"),
            Some("c"),
            &["b".to_owned(), "b".to_owned()]
        ));
        let even = evenly(5);
        assert!(fits(None, None, &even));
    }

    #[test]
    fn spread_is_ascending_and_inside() {
        for n in [0, 1, 2, 3, 10, 100] {
            let ranks = spread(Some("00100000"), Some("00100001"), n);
            assert_eq!(ranks.len(), n);
            let mut prev = "00100000".to_owned();
            for r in &ranks {
                assert!(*r > prev, "{r} > {prev}");
                prev = r.clone();
            }
            assert!(prev.as_str() < "00100001");
        }
    }
}
