//! Brute-force protection as pure rules over counters the store keeps.
//!
//! - **Per account** (keyed by the normalised email, whether or not such a user exists, so
//!   throttling reveals nothing): every guess is counted *before* the password is checked,
//!   so parallel guesses cannot outrun the count. From the `max_failures`-th consecutive
//!   failure on, the account is locked for a backoff that doubles from 1 s up to 15 min; a
//!   successful login clears it. Failures older than a day are forgotten.
//! - **Per client address**: at most `max_failures_per_address` failed guesses per 15
//!   minutes across all accounts (a fixed window).
//! - **Registrations per address**: at most `register_limit_per_hour` attempts per hour
//!   (0 turns the limit off).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterScope {
    /// Consecutive failed logins of one account (key: the normalised email).
    LoginAccount,
    /// Failed logins from one client address.
    LoginAddress,
    /// Registrations from one client address.
    RegisterAddress,
    /// Recovery requests (reset and verification codes asked for and presented) from one
    /// client address: the registrations' limit, counted apart.
    RecoveryAddress,
    /// Consecutive failed logins that presented one device token (key: the token's
    /// SHA-256): a device that logged in before is throttled on its own failures only.
    LoginDevice,
}

impl CounterScope {
    /// The name used in storage.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginAccount => "login_account",
            Self::LoginAddress => "login_address",
            Self::RegisterAddress => "register_address",
            Self::RecoveryAddress => "recovery_address",
            Self::LoginDevice => "login_device",
        }
    }
}

/// The key a client address is counted under by every per-address limit: an IPv4-mapped
/// IPv6 address counts as its IPv4 address, and an IPv6 address as its /64 (every host
/// has a /64 to pick addresses from); anything else as it is.
#[must_use]
pub fn address_key(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => address.to_owned(),
    }
}

/// A stored counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Attempts counted.
    pub count: i64,
    /// For accounts: the last counted attempt; for addresses: the window's start.
    pub since: DateTime<Utc>,
    /// No attempt before this moment.
    pub locked_until: Option<DateTime<Utc>>,
}

/// The limits, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Consecutive failures of one account before it is locked (backoff).
    pub max_failures: u32,
    /// Failed logins per client address per [`ThrottlePolicy::ADDRESS_WINDOW`].
    pub max_failures_per_address: u32,
    /// Registrations per client address per hour; 0 for no limit.
    pub register_limit_per_hour: u32,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            max_failures_per_address: 100,
            register_limit_per_hour: 100,
        }
    }
}

/// A refusal, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until an attempt may succeed (at least 1).
    pub retry_after: u64,
}

impl ThrottlePolicy {
    /// The window of the per-address login budget.
    pub const ADDRESS_WINDOW: chrono::Duration = chrono::Duration::minutes(15);
    /// The window of the registration limit.
    pub const REGISTER_WINDOW: chrono::Duration = chrono::Duration::hours(1);
    /// The longest account backoff.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
    /// Failures older than this are forgotten.
    pub const FAILURE_MEMORY: chrono::Duration = chrono::Duration::days(1);

    /// The backoff after the `n`-th failure at or beyond the limit (n = 0 for the first):
    /// 1 s, 2 s, 4 s … 15 min.
    #[must_use]
    pub fn backoff(n: u32) -> Duration {
        Duration::from_secs(1u64 << n.min(10)).min(Self::MAX_BACKOFF)
    }

    /// Counts one guess at an account, or refuses it while the account is locked.
    ///
    /// # Errors
    /// [`Throttled`] while locked.
    pub fn account_attempt(
        &self,
        counter: Option<Counter>,
        now: DateTime<Utc>,
    ) -> Result<Counter, Throttled> {
        let mut counter = match counter {
            Some(c)
                if now - c.since < Self::FAILURE_MEMORY
                    || c.locked_until.is_some_and(|l| l > now) =>
            {
                c
            }
            _ => Counter {
                count: 0,
                since: now,
                locked_until: None,
            },
        };
        if let Some(until) = counter.locked_until.filter(|until| *until > now) {
            return Err(wait(until, now));
        }
        counter.count += 1;
        counter.since = now;
        let max = i64::from(self.max_failures.max(1));
        counter.locked_until = (counter.count >= max).then(|| {
            let beyond = u32::try_from(counter.count - max).unwrap_or(u32::MAX);
            now + chrono::Duration::from_std(Self::backoff(beyond))
                .unwrap_or(chrono::Duration::minutes(15))
        });
        Ok(counter)
    }

    /// Counts one guess from an address, or refuses it when the window's budget is spent.
    ///
    /// # Errors
    /// [`Throttled`] until the window ends.
    pub fn address_attempt(
        &self,
        counter: Option<Counter>,
        now: DateTime<Utc>,
    ) -> Result<Counter, Throttled> {
        window_attempt(
            counter,
            now,
            Self::ADDRESS_WINDOW,
            self.max_failures_per_address,
        )
    }

    /// Gives back one counted guess that was never checked (refused as overloaded after it
    /// was counted): one fewer, and no lock unless the failures left still call for one.
    #[must_use]
    pub fn uncount_attempt(&self, mut counter: Counter) -> Counter {
        counter.count = (counter.count - 1).max(0);
        if counter.count < i64::from(self.max_failures.max(1)) {
            counter.locked_until = None;
        }
        counter
    }

    /// Gives back a guess that was right but opens only a second step (the MFA issue): one
    /// fewer, and no lock. The attempt was let through, so any lock before it had run out;
    /// a lock now is the one it set itself. The failures stay counted.
    #[must_use]
    pub fn uncount_right_guess(&self, counter: Counter) -> Counter {
        Counter {
            locked_until: None,
            ..self.uncount_attempt(counter)
        }
    }

    /// Counts one registration from an address, or refuses it over the hourly limit.
    ///
    /// # Errors
    /// [`Throttled`] until the hour's window ends.
    pub fn register_attempt(
        &self,
        counter: Option<Counter>,
        now: DateTime<Utc>,
    ) -> Result<Option<Counter>, Throttled> {
        if self.register_limit_per_hour == 0 {
            return Ok(None);
        }
        window_attempt(
            counter,
            now,
            Self::REGISTER_WINDOW,
            self.register_limit_per_hour,
        )
        .map(Some)
    }
}

fn window_attempt(
    counter: Option<Counter>,
    now: DateTime<Utc>,
    window: chrono::Duration,
    budget: u32,
) -> Result<Counter, Throttled> {
    let mut counter = match counter {
        Some(c) if now - c.since < window => c,
        _ => Counter {
            count: 0,
            since: now,
            locked_until: None,
        },
    };
    if counter.count >= i64::from(budget) {
        return Err(wait(counter.since + window, now));
    }
    counter.count += 1;
    counter.locked_until = None;
    Ok(counter)
}

/// Whole seconds from `now` to `until`, rounded up, at least 1.
fn wait(until: DateTime<Utc>, now: DateTime<Utc>) -> Throttled {
    let millis = (until - now).num_milliseconds().max(0);
    let seconds = u64::try_from((millis + 999) / 1000).unwrap_or(1).max(1);
    Throttled {
        retry_after: seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn the_fifth_failure_locks_with_a_doubling_backoff() {
        let policy = ThrottlePolicy::default();
        let mut counter = None;
        for i in 1..=4 {
            let c = policy.account_attempt(counter, at(0)).unwrap();
            assert_eq!((c.count, c.locked_until), (i, None));
            counter = Some(c);
        }
        let fifth = policy.account_attempt(counter, at(0)).unwrap();
        assert_eq!(fifth.locked_until, Some(at(1)));
        assert_eq!(
            policy.account_attempt(Some(fifth), at(0)),
            Err(Throttled { retry_after: 1 })
        );
        let sixth = policy.account_attempt(Some(fifth), at(1)).unwrap();
        assert_eq!(sixth.locked_until, Some(at(3)));
        let seventh = policy.account_attempt(Some(sixth), at(3)).unwrap();
        assert_eq!(seventh.locked_until, Some(at(7)));
        assert_eq!(
            policy.account_attempt(Some(seventh), at(4)),
            Err(Throttled { retry_after: 3 })
        );
    }

    #[test]
    fn the_backoff_is_bounded_and_never_permanent() {
        assert_eq!(ThrottlePolicy::backoff(0), Duration::from_secs(1));
        assert_eq!(ThrottlePolicy::backoff(3), Duration::from_secs(8));
        assert_eq!(ThrottlePolicy::backoff(10), Duration::from_secs(900));
        assert_eq!(ThrottlePolicy::backoff(u32::MAX), Duration::from_secs(900));
        let policy = ThrottlePolicy::default();
        let huge = Counter {
            count: 1_000_000,
            since: at(0),
            locked_until: Some(at(900)),
        };
        assert_eq!(
            policy.account_attempt(Some(huge), at(0)),
            Err(Throttled { retry_after: 900 })
        );
        assert!(policy.account_attempt(Some(huge), at(900)).is_ok());
    }

    #[test]
    fn old_failures_are_forgotten() {
        let policy = ThrottlePolicy::default();
        let old = Counter {
            count: 4,
            since: at(0),
            locked_until: None,
        };
        let next = policy.account_attempt(Some(old), at(2 * 86_400)).unwrap();
        assert_eq!(next.count, 1);
    }

    #[test]
    fn address_budgets_are_per_window() {
        let policy = ThrottlePolicy {
            max_failures_per_address: 2,
            ..ThrottlePolicy::default()
        };
        let one = policy.address_attempt(None, at(0)).unwrap();
        let two = policy.address_attempt(Some(one), at(10)).unwrap();
        assert_eq!(
            policy.address_attempt(Some(two), at(20)),
            Err(Throttled { retry_after: 880 })
        );
        let fresh = policy.address_attempt(Some(two), at(900)).unwrap();
        assert_eq!(fresh.count, 1);
    }

    #[test]
    fn registration_limit_zero_is_off() {
        let off = ThrottlePolicy {
            register_limit_per_hour: 0,
            ..ThrottlePolicy::default()
        };
        assert_eq!(off.register_attempt(None, at(0)), Ok(None));
        let one = ThrottlePolicy {
            register_limit_per_hour: 1,
            ..ThrottlePolicy::default()
        };
        let first = one.register_attempt(None, at(0)).unwrap();
        assert_eq!(
            one.register_attempt(first, at(1)),
            Err(Throttled { retry_after: 3599 })
        );
    }

    #[test]
    fn addresses_count_as_their_ipv4_or_their_64() {
        assert_eq!(address_key("192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(
            address_key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            address_key("2001:db8:1:2::1")
        );
        assert_ne!(
            address_key("2001:db8:1:3::1"),
            address_key("2001:db8:1:2::1")
        );
        assert_eq!(address_key("::1"), "::/64");
        assert_eq!(address_key("not an address"), "not an address");
    }

    #[test]
    fn an_unchecked_guess_is_given_back() {
        let policy = ThrottlePolicy::default();
        let mut counter = None;
        for _ in 0..5 {
            counter = Some(policy.account_attempt(counter, at(0)).unwrap());
        }
        let locked = counter.unwrap();
        assert!(locked.locked_until.is_some());
        let back = policy.uncount_attempt(locked);
        assert_eq!(back.count, 4);
        assert_eq!(back.locked_until, None);
        let mut more = back;
        for _ in 0..3 {
            more.count += 1;
        }
        more.locked_until = Some(at(60));
        assert_eq!(policy.uncount_attempt(more).locked_until, Some(at(60)));
        let zero = Counter {
            count: 0,
            since: at(0),
            locked_until: None,
        };
        assert_eq!(policy.uncount_attempt(zero).count, 0);
    }

    #[test]
    fn a_right_password_before_a_second_step_keeps_the_failures_but_not_its_lock() {
        let policy = ThrottlePolicy::default();
        let mut counter = None;
        for _ in 0..5 {
            counter = Some(policy.account_attempt(counter, at(0)).unwrap());
        }
        // The lock of the fifth failure ran out; the sixth attempt sets one of its own.
        let counted = policy.account_attempt(counter, at(10)).unwrap();
        assert_eq!(counted.count, 6);
        assert!(counted.locked_until.is_some());
        let back = policy.uncount_right_guess(counted);
        assert_eq!((back.count, back.locked_until), (5, None));
    }
}
