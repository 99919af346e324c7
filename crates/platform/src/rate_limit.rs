//! Per-client rate limiting (token bucket, GCRA) for endpoints that are cheap to call and costly
//! or sensitive to answer: sign-up, password reset, verification. In-process: with several
//! replicas each enforces its own budget (the gateway's shared limiter comes later).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::problem::Problem;

#[derive(Clone)]
pub struct IpRateLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    per_minute: u32,
}

impl IpRateLimiter {
    /// `per_minute` requests per client address, with bursts of the same size.
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        let limiter = Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute)));
        // Forget idle clients now and then so the table does not grow without bound.
        let weak = Arc::downgrade(&limiter);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    let Some(limiter) = weak.upgrade() else { break };
                    limiter.retain_recent();
                }
            });
        }
        Self {
            limiter,
            per_minute: per_minute.get(),
        }
    }

    /// Takes one token for `ip`, or answers 429 with the wait in `Retry-After`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Problem> {
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            metrics::counter!("rate_limited_requests_total").increment(1);
            Problem::too_many_requests(
                wait.as_secs_f64().ceil() as u64,
                format!("at most {} such requests per minute from one address", self.per_minute),
            )
        })
    }
}

/// The same token bucket keyed by a name (e.g. a service client id) instead of an address.
#[derive(Clone)]
pub struct NamedRateLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    per_minute: u32,
}

impl NamedRateLimiter {
    /// `per_minute` requests per name, with bursts of the same size. Only use it for a bounded
    /// set of names (no table pruning).
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            per_minute: per_minute.get(),
        }
    }

    /// Takes one token for `name`, or answers 429 with the wait in `Retry-After`.
    pub fn check(&self, name: &str) -> Result<(), Problem> {
        self.limiter.check_key(&name.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            metrics::counter!("rate_limited_requests_total").increment(1);
            Problem::too_many_requests(
                wait.as_secs_f64().ceil() as u64,
                format!("at most {} such requests per minute for one client", self.per_minute),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_is_per_address() {
        let limiter = IpRateLimiter::per_minute(NonZeroU32::new(2).expect("non-zero"));
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        let refused = limiter.check(a).expect_err("third within a minute");
        assert_eq!(refused.status.as_u16(), 429);
        assert!(refused.retry_after_secs().is_some_and(|s| (1..=60).contains(&s)));
        assert!(limiter.check(b).is_ok(), "another address has its own budget");
    }
}
