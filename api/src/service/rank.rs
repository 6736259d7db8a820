//! Ranks: an item's position in its board column, compared as text.
//!
//! Appending takes the next step of an 8-digit base-36 counter, leaving room
//! between neighbours so a card can later be placed between two others
//! without renumbering the column.

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const WIDTH: usize = 8;
/// Gap left between appended cards.
const STEP: u64 = 1 << 20;

fn parse_prefix(rank: &str) -> Option<u64> {
    let prefix = rank.get(..WIDTH)?;
    u64::from_str_radix(prefix, 36).ok()
}

fn format(mut n: u64) -> String {
    let mut buf = [b'0'; WIDTH];
    for slot in buf.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A rank after `last` (the column's current last rank), or the first rank of
/// an empty column.
pub fn after(last: Option<&str>) -> String {
    let max = 36u64.pow(WIDTH as u32) - 1;
    match last.and_then(parse_prefix) {
        None => format(STEP),
        Some(n) if n + STEP < max => format(n + STEP),
        // The counter is exhausted: extend the last rank instead.
        Some(_) => format!("{}i", last.unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_ranks_sort_in_order() {
        let mut last: Option<String> = None;
        let mut seen = Vec::new();
        for _ in 0..1000 {
            let r = after(last.as_deref());
            if let Some(l) = &last {
                assert!(r.as_str() > l.as_str());
            }
            assert_eq!(r.len(), WIDTH);
            seen.push(r.clone());
            last = Some(r);
        }
    }
}
