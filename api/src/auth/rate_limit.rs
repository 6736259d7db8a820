//! Failed-login limits per email and per client address (sliding window).
//! Kept in process memory: each replica counts its own failures.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct LoginLimiter {
    per_email: u32,
    per_address: u32,
    window: Duration,
    failures: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    emails: HashMap<String, VecDeque<Instant>>,
    addresses: HashMap<IpAddr, VecDeque<Instant>>,
}

fn recent(q: &mut VecDeque<Instant>, window: Duration, now: Instant) -> usize {
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
    q.len()
}

impl LoginLimiter {
    pub fn new(per_email: u32, per_address: u32, window: Duration) -> Self {
        Self {
            per_email,
            per_address,
            window,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// Starts an attempt: refuses it when limited, otherwise counts it as a
    /// failure at once (in the same locked step), so parallel attempts cannot
    /// all pass the check. [`LoginLimiter::record_success`] takes it back.
    pub fn begin_attempt(&self, email: &str, address: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let window = self.window;
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let by_email = f
            .emails
            .get_mut(email)
            .map(|q| recent(q, window, now))
            .unwrap_or(0);
        let by_address = address
            .and_then(|a| f.addresses.get_mut(&a))
            .map(|q| recent(q, window, now))
            .unwrap_or(0);
        if by_email >= self.per_email as usize || by_address >= self.per_address as usize {
            return false;
        }
        if f.emails.len() > 10_000 {
            f.emails.retain(|_, q| recent(q, window, now) > 0);
        }
        if f.addresses.len() > 10_000 {
            f.addresses.retain(|_, q| recent(q, window, now) > 0);
        }
        f.emails.entry(email.to_owned()).or_default().push_back(now);
        if let Some(a) = address {
            f.addresses.entry(a).or_default().push_back(now);
        }
        true
    }

    /// A successful login clears the email's failures and takes back the
    /// address's count for this attempt.
    pub fn record_success(&self, email: &str, address: Option<IpAddr>) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.emails.remove(email);
        if let Some(q) = address.and_then(|a| f.addresses.get_mut(&a)) {
            q.pop_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_email_and_per_address() {
        let l = LoginLimiter::new(2, 3, Duration::from_secs(60));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.begin_attempt("a@x", Some(a)));
        assert!(l.begin_attempt("a@x", Some(a)));
        assert!(!l.begin_attempt("a@x", Some(a)), "email limit");
        assert!(l.begin_attempt("b@x", Some(a)));
        assert!(!l.begin_attempt("c@x", Some(a)), "address limit");
        assert!(l.begin_attempt("c@x", None), "another address still may");
    }

    #[test]
    fn attempts_count_when_they_start() {
        let l = LoginLimiter::new(2, 10, Duration::from_secs(60));
        assert!(l.begin_attempt("a@x", None));
        assert!(l.begin_attempt("a@x", None));
        assert!(
            !l.begin_attempt("a@x", None),
            "the third parallel attempt is refused"
        );
        l.record_success("a@x", None);
        assert!(l.begin_attempt("a@x", None));
    }
}
