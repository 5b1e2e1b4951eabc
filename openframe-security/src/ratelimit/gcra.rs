//! The GCRA arithmetic every limiter shares, in whole microseconds.
//!
//! Backends only store one theoretical arrival time (`TAT`, epoch microseconds) per key and
//! quota; the decision is always computed here, so the in-process and Redis limiters cannot
//! disagree. The Redis Lua script repeats [`evaluate`]'s allow rule in Lua (it must decide
//! atomically) and its answer is cross-checked against this one.

use std::time::Duration;

use openframe_core::Timestamp;

use super::{Decision, Quota};

/// A quota's GCRA parameters, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    /// The emission interval `T`: `period / limit`, rounded up (at least 1 µs), so the
    /// sustained rate never exceeds the quota.
    pub(crate) interval: i64,
    /// The burst tolerance: `limit * T`. A request is allowed while `TAT - now` stays within it,
    /// so exactly `limit` requests fit in a burst.
    pub(crate) tolerance: i64,
}

impl Params {
    /// The parameters of a validated quota.
    pub(crate) fn of(quota: &Quota) -> Self {
        let period = period_micros(quota);
        let limit = i64::from(quota.limit.max(1));
        let interval = (period.saturating_add(limit - 1) / limit).max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(limit),
        }
    }
}

/// The quota's period in whole microseconds.
fn period_micros(quota: &Quota) -> i64 {
    i64::try_from(quota.period.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(feature = "redis")]
/// The name under which a backend stores the `TAT` of `quota` for a key: `{limit}/{period µs}`.
pub(crate) fn field(quota: &Quota) -> String {
    format!("{}/{}", quota.limit, period_micros(quota))
}

/// Epoch microseconds of `at`.
pub(crate) fn micros(at: Timestamp) -> i64 {
    at.timestamp_micros()
}

/// A non-negative number of microseconds as a duration.
fn duration(micros: i64) -> Duration {
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// The outcome of one request against its quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// What to answer.
    pub(crate) decision: Decision,
    /// When allowed: the new `TAT` of every quota (aligned with the quotas) to store.
    pub(crate) new_tats: Option<Vec<i64>>,
}

/// Decides one request at `now` (epoch µs) against `quotas`, whose stored `TAT`s are `tats`
/// (aligned; `None` when nothing is stored). `quotas` must be valid and non-empty.
///
/// A stored `TAT` before `now` counts as `now` (the bucket is full); one further ahead than
/// the tolerance (the clock moved backwards) counts as `now + tolerance` (the bucket is
/// empty), so a clock step never grants extra requests nor blocks for more than a period.
pub(crate) fn evaluate(now: i64, quotas: &[Quota], tats: &[Option<i64>]) -> Outcome {
    struct State {
        limit: u32,
        /// `TAT` after this request (when allowed) or as it stays (when denied).
        tat: i64,
        remaining: u32,
        /// Until a request would be allowed, when this quota denies.
        retry: Option<i64>,
    }

    let mut states = Vec::with_capacity(quotas.len());
    let mut allowed = true;
    let mut candidates = Vec::with_capacity(quotas.len());
    for (i, quota) in quotas.iter().enumerate() {
        let p = Params::of(quota);
        let tat = tats
            .get(i)
            .copied()
            .flatten()
            .unwrap_or(now)
            .clamp(now, now.saturating_add(p.tolerance));
        let next = tat.saturating_add(p.interval);
        let fits = next - now <= p.tolerance;
        allowed &= fits;
        candidates.push((p, tat, next));
        states.push(State {
            limit: quota.limit,
            tat,
            remaining: 0,
            retry: (!fits).then(|| next - p.tolerance - now),
        });
    }
    for (state, (p, tat, next)) in states.iter_mut().zip(&candidates) {
        state.tat = if allowed { *next } else { *tat };
        let left = (p.tolerance - (state.tat - now)).max(0) / p.interval;
        state.remaining = u32::try_from(left).unwrap_or(u32::MAX).min(state.limit);
    }

    // The most restrictive quota: fewest requests left, then the longest until replenished.
    let tightest = states
        .iter()
        .min_by(|a, b| a.remaining.cmp(&b.remaining).then(b.tat.cmp(&a.tat)));
    let retry_after = states.iter().filter_map(|s| s.retry).max().map(duration);
    let decision = match tightest {
        Some(s) => Decision {
            allowed,
            limit: s.limit,
            remaining: s.remaining,
            reset_after: duration(s.tat - now),
            retry_after: if allowed { None } else { retry_after },
        },
        None => Decision {
            allowed,
            limit: 0,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after: None,
        },
    };
    Outcome {
        decision,
        new_tats: allowed.then(|| states.iter().map(|s| s.tat).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn q(limit: u32, secs: u64) -> Quota {
        Quota {
            limit,
            period: Duration::from_secs(secs),
        }
    }

    #[test]
    fn params_round_the_interval_up_and_keep_the_burst() {
        assert_eq!(
            Params::of(&q(10, 60)),
            Params {
                interval: 6 * S,
                tolerance: 60 * S
            }
        );
        let p = Params::of(&q(7, 60));
        assert_eq!(p.interval, 8_571_429);
        assert!(p.tolerance >= 60 * S);
        let p = Params::of(&q(u32::MAX, 1));
        assert_eq!(p.interval, 1);
        assert_eq!(p.tolerance, i64::from(u32::MAX));
    }

    #[test]
    fn burst_then_exact_retry() {
        let quotas = [q(3, 60)];
        let mut tat = None;
        for remaining in [2, 1, 0] {
            let o = evaluate(0, &quotas, &[tat]);
            assert!(o.decision.allowed);
            assert_eq!(o.decision.remaining, remaining);
            tat = Some(o.new_tats.unwrap()[0]);
        }
        let o = evaluate(0, &quotas, &[tat]);
        assert!(!o.decision.allowed);
        assert_eq!(o.new_tats, None);
        assert_eq!(o.decision.retry_after, Some(Duration::from_secs(20)));
        assert_eq!(o.decision.reset_after, Duration::from_secs(60));
    }

    #[test]
    fn a_clock_step_backwards_is_clamped() {
        let o = evaluate(0, &[q(10, 60)], &[Some(3600 * S)]);
        assert!(!o.decision.allowed);
        assert_eq!(o.decision.retry_after, Some(Duration::from_secs(6)));
        assert_eq!(o.decision.reset_after, Duration::from_secs(60));
    }
}
