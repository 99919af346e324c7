//! A circuit breaker per upstream: after `failures` consecutive failures it opens, and calls fail
//! at once (no connection attempt, no waiting for a timeout) until `open_for` has passed; then one
//! probe goes through, and its outcome closes the breaker or opens it again.
//!
//! The state machine is plain data driven by the caller's clock, so it is tested without time
//! passing; [`Breaker`] wraps it in a mutex for the proxy.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::Gauge;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight since `probe_started`; everyone else is turned away.
    HalfOpen {
        probe_started: Instant,
    },
}

/// What the breaker says about a call about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Allowed as the one probe of a half-open breaker.
    Probe,
    Rejected {
        retry_after: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Circuit {
    policy: BreakerPolicy,
    state: State,
}

impl Circuit {
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            state: State::Closed {
                consecutive_failures: 0,
            },
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if now < until => Admission::Rejected {
                retry_after: until - now,
            },
            State::Open { .. } => {
                self.state = State::HalfOpen { probe_started: now };
                Admission::Probe
            }
            // A probe whose caller went away without reporting must not wedge the breaker:
            // after another open period, the next call probes instead.
            State::HalfOpen { probe_started } if now.duration_since(probe_started) >= self.policy.open_for => {
                self.state = State::HalfOpen { probe_started: now };
                Admission::Probe
            }
            State::HalfOpen { probe_started } => Admission::Rejected {
                retry_after: (probe_started + self.policy.open_for).saturating_duration_since(now),
            },
        }
    }

    /// Records a call's outcome. Returns true when this report opened the breaker.
    pub fn record(&mut self, success: bool, now: Instant) -> bool {
        match (self.state, success) {
            (_, true) => {
                self.state = State::Closed {
                    consecutive_failures: 0,
                };
                false
            }
            (State::Closed { consecutive_failures }, false) => {
                let failures = consecutive_failures + 1;
                if failures >= self.policy.failures {
                    self.state = State::Open {
                        until: now + self.policy.open_for,
                    };
                    true
                } else {
                    self.state = State::Closed {
                        consecutive_failures: failures,
                    };
                    false
                }
            }
            (State::HalfOpen { .. }, false) => {
                self.state = State::Open {
                    until: now + self.policy.open_for,
                };
                true
            }
            // A call admitted before the breaker opened finished late: nothing new to learn.
            (State::Open { .. }, false) => false,
        }
    }
}

/// A shared [`Circuit`] for one upstream, reporting its state as the gauge
/// `gateway_breaker_state{upstream}` (0 closed, 1 half-open, 2 open).
pub struct Breaker {
    upstream: &'static str,
    circuit: Mutex<Circuit>,
    /// `gateway_breaker_state{upstream}`, kept (see `platform::metrics::kept`): it is set twice
    /// per proxied request.
    gauge: OnceLock<Gauge>,
}

impl Breaker {
    pub fn new(upstream: &'static str, policy: BreakerPolicy) -> Self {
        let breaker = Self {
            upstream,
            circuit: Mutex::new(Circuit::new(policy)),
            gauge: OnceLock::new(),
        };
        breaker.report(breaker.state());
        breaker
    }

    pub fn admit(&self) -> Admission {
        let mut circuit = self.circuit.lock().unwrap_or_else(|p| p.into_inner());
        let admission = circuit.admit(Instant::now());
        self.report(circuit.state());
        admission
    }

    pub fn record(&self, success: bool) {
        let mut circuit = self.circuit.lock().unwrap_or_else(|p| p.into_inner());
        if circuit.record(success, Instant::now()) {
            tracing::warn!(
                upstream = self.upstream,
                "circuit breaker opened: calls fail fast until a probe succeeds"
            );
        }
        self.report(circuit.state());
    }

    pub fn state(&self) -> State {
        self.circuit.lock().unwrap_or_else(|p| p.into_inner()).state()
    }

    fn report(&self, state: State) {
        let value = match state {
            State::Closed { .. } => 0.0,
            State::HalfOpen { .. } => 1.0,
            State::Open { .. } => 2.0,
        };
        if let Some(gauge) = platform::metrics::kept(
            &self.gauge,
            || metrics::gauge!("gateway_breaker_state", "upstream" => self.upstream),
        ) {
            gauge.set(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures: 3,
        open_for: Duration::from_secs(10),
    };

    #[test]
    fn consecutive_failures_open_it_and_a_success_in_between_resets_the_count() {
        let t = Instant::now();
        let mut c = Circuit::new(POLICY);
        assert!(!c.record(false, t));
        assert!(!c.record(false, t));
        assert!(!c.record(true, t));
        assert!(!c.record(false, t));
        assert!(!c.record(false, t));
        assert_eq!(c.admit(t), Admission::Allowed);
        assert!(c.record(false, t), "the third failure in a row opens it");
        assert_eq!(
            c.admit(t + Duration::from_secs(4)),
            Admission::Rejected {
                retry_after: Duration::from_secs(6)
            }
        );
    }

    #[test]
    fn after_the_open_period_one_probe_decides() {
        let t = Instant::now();
        let mut c = Circuit::new(POLICY);
        for _ in 0..3 {
            c.record(false, t);
        }
        let later = t + Duration::from_secs(10);
        assert_eq!(c.admit(later), Admission::Probe);
        assert!(
            matches!(c.admit(later), Admission::Rejected { .. }),
            "only one probe at a time"
        );
        c.record(true, later);
        assert_eq!(
            c.state(),
            State::Closed {
                consecutive_failures: 0
            }
        );
        assert_eq!(c.admit(later), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let t = Instant::now();
        let mut c = Circuit::new(POLICY);
        for _ in 0..3 {
            c.record(false, t);
        }
        let later = t + Duration::from_secs(11);
        assert_eq!(c.admit(later), Admission::Probe);
        assert!(c.record(false, later));
        assert_eq!(
            c.admit(later + Duration::from_secs(1)),
            Admission::Rejected {
                retry_after: Duration::from_secs(9)
            }
        );
    }

    #[test]
    fn a_lost_probe_does_not_wedge_the_breaker() {
        let t = Instant::now();
        let mut c = Circuit::new(POLICY);
        for _ in 0..3 {
            c.record(false, t);
        }
        assert_eq!(c.admit(t + Duration::from_secs(10)), Admission::Probe);
        // Its caller never reports; an open period later another call probes.
        assert_eq!(c.admit(t + Duration::from_secs(20)), Admission::Probe);
    }

    #[test]
    fn late_failures_of_calls_admitted_before_opening_change_nothing() {
        let t = Instant::now();
        let mut c = Circuit::new(POLICY);
        for _ in 0..3 {
            c.record(false, t);
        }
        let open = c.state();
        assert!(!c.record(false, t + Duration::from_secs(1)));
        assert_eq!(c.state(), open);
    }
}
