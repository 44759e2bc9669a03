//! What `demo` and `soak` count, and the summary they print: attempts,
//! successes, failures by category, resolutions by source, resolve latency,
//! the longest wait for a fallback answer, and the feedback counts.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use proxy_delegate_core::model::ErrorCategory;
use proxy_delegate_core::resolver::Source;
use serde::Serialize;

/// Most resolve latencies kept for the percentiles (a long soak keeps
/// counting, and keeps the maximum; percentiles come from the first ones).
const MAX_SAMPLES: usize = 4_000_000;

/// The failure of a connection that was never tried (no route: the
/// service's `fail` policy, or bad input).
pub(crate) const UNROUTED: &str = "no_route";

/// Counts of one run; merge the counts of several tasks with [`Tally::merge`].
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) attempts: u64,
    pub(crate) successes: u64,
    pub(crate) failures: BTreeMap<&'static str, u64>,
    pub(crate) resolutions: BTreeMap<&'static str, u64>,
    resolve_us: Vec<u32>,
    max_resolve_us: u64,
    max_fallback_wait: Duration,
}

impl Tally {
    /// A route came from `source` after `waited`.
    pub(crate) fn resolved(&mut self, source: Source, waited: Duration) {
        *self.resolutions.entry(source.as_str()).or_default() += 1;
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.max_resolve_us = self.max_resolve_us.max(us);
        if self.resolve_us.len() < MAX_SAMPLES {
            self.resolve_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        if matches!(source, Source::Stale | Source::Embedded | Source::Direct) {
            self.max_fallback_wait = self.max_fallback_wait.max(waited);
        }
    }

    /// A connection attempt ended: `Ok` or the category it failed with
    /// (`None`: it was never tried).
    pub(crate) fn attempted(&mut self, outcome: Result<(), Option<ErrorCategory>>) {
        self.attempts += 1;
        match outcome {
            Ok(()) => self.successes += 1,
            Err(category) => {
                let name = category.map_or(UNROUTED, ErrorCategory::as_str);
                *self.failures.entry(name).or_default() += 1;
            }
        }
    }

    pub(crate) fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    pub(crate) fn merge(&mut self, other: &Tally) {
        self.attempts += other.attempts;
        self.successes += other.successes;
        for (k, v) in &other.failures {
            *self.failures.entry(k).or_default() += v;
        }
        for (k, v) in &other.resolutions {
            *self.resolutions.entry(k).or_default() += v;
        }
        let room = MAX_SAMPLES.saturating_sub(self.resolve_us.len());
        self.resolve_us
            .extend(other.resolve_us.iter().take(room).copied());
        self.max_resolve_us = self.max_resolve_us.max(other.max_resolve_us);
        self.max_fallback_wait = self.max_fallback_wait.max(other.max_fallback_wait);
    }

    /// The summary, with the client's feedback counts (all zero without a
    /// client: nothing is sent anywhere).
    pub(crate) fn summary(&self, feedback: FeedbackCounts) -> Summary {
        let mut sorted = self.resolve_us.clone();
        sorted.sort_unstable();
        let at = |q: f64| -> u64 {
            if sorted.is_empty() {
                return 0;
            }
            // Nearest rank.
            let rank = (q * sorted.len() as f64).ceil() as usize;
            u64::from(sorted[rank.clamp(1, sorted.len()) - 1])
        };
        Summary {
            attempts: self.attempts,
            successes: self.successes,
            failures: self
                .failures
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            resolutions: self
                .resolutions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            resolve_latency_us: Latency {
                p50: at(0.50),
                p99: at(0.99),
                max: self.max_resolve_us,
            },
            max_fallback_wait_ms: self.max_fallback_wait.as_secs_f64() * 1e3,
            feedback,
        }
    }
}

/// Feedback events as the client counted them.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub(crate) struct FeedbackCounts {
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
    pub(crate) queued: u64,
}

/// Resolve latency in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: u64,
    pub(crate) p99: u64,
    pub(crate) max: u64,
}

/// The end-of-run summary (`--json` prints it as one object).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub(crate) attempts: u64,
    pub(crate) successes: u64,
    pub(crate) failures: BTreeMap<String, u64>,
    pub(crate) resolutions: BTreeMap<String, u64>,
    pub(crate) resolve_latency_us: Latency,
    pub(crate) max_fallback_wait_ms: f64,
    pub(crate) feedback: FeedbackCounts,
}

impl Summary {
    /// The summary for a person, a few aligned lines.
    pub(crate) fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let list = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_owned()
            } else {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let failed: u64 = self.failures.values().sum();
        writeln!(
            out,
            "connections   {} attempted, {} succeeded, {failed} failed",
            self.attempts, self.successes
        )?;
        writeln!(out, "failures      {}", list(&self.failures))?;
        writeln!(out, "resolutions   {}", list(&self.resolutions))?;
        writeln!(
            out,
            "resolve       p50 {} us, p99 {} us, max {} us; longest fallback wait {:.1} ms",
            self.resolve_latency_us.p50,
            self.resolve_latency_us.p99,
            self.resolve_latency_us.max,
            self.max_fallback_wait_ms
        )?;
        writeln!(
            out,
            "feedback      {} sent, {} dropped, {} queued",
            self.feedback.sent, self.feedback.dropped, self.feedback.queued
        )
    }
}

/// The client's feedback counts, or zeros without a client.
pub(crate) fn feedback_counts(
    client: Option<&proxy_delegate_tokio::ProxyServiceClient>,
) -> FeedbackCounts {
    client.map_or_else(FeedbackCounts::default, |c| {
        let (_, fb) = c.stats();
        FeedbackCounts {
            sent: fb.sent,
            // Refused by the service: not delivered either.
            dropped: fb.dropped.saturating_add(fb.rejected),
            // The batch in flight is not delivered yet; its events are
            // among `queued` already (`in_flight` counts them again).
            queued: u64::try_from(fb.queued).unwrap_or(u64::MAX),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_fallback_waits_are_counted() {
        let mut t = Tally::default();
        for us in 1..=100u64 {
            t.resolved(Source::Cache, Duration::from_micros(us));
        }
        t.resolved(Source::Embedded, Duration::from_millis(7));
        t.attempted(Ok(()));
        t.attempted(Err(Some(ErrorCategory::ProxyAuth)));
        t.attempted(Err(None));
        let mut all = Tally::default();
        all.merge(&t);
        let s = all.summary(FeedbackCounts::default());
        assert_eq!(s.attempts, 3);
        assert_eq!(s.successes, 1);
        assert_eq!(s.failures["proxy_auth"], 1);
        assert_eq!(s.failures[UNROUTED], 1);
        assert_eq!(s.resolutions["cache"], 100);
        assert_eq!(s.resolutions["embedded"], 1);
        assert_eq!(s.resolve_latency_us.p50, 51);
        assert_eq!(s.resolve_latency_us.p99, 100);
        assert_eq!(s.resolve_latency_us.max, 7_000);
        assert!((s.max_fallback_wait_ms - 7.0).abs() < 1e-9);
        let json = serde_json::to_value(&s).expect("JSON");
        for key in [
            "attempts",
            "successes",
            "failures",
            "resolutions",
            "resolve_latency_us",
            "max_fallback_wait_ms",
            "feedback",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        let mut text = Vec::new();
        s.write_text(&mut text).expect("write");
        let text = String::from_utf8(text).expect("UTF-8");
        assert!(
            text.contains("3 attempted, 1 succeeded, 2 failed"),
            "{text}"
        );
    }
}
