//! The injector's connection attempts as it counts them itself: a `metrics`
//! recorder that keeps `proxy_delegate_connections_total` by `event` and
//! `category` and drops every other metric. Through it the demo sees each
//! attempt, the first, failed one of a connection the injector retried
//! through a fresh route included, with its real category.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use proxy_delegate_tokio::metrics::CONNECTIONS;

/// (event, category) → count.
type Counts = Mutex<BTreeMap<(String, String), Arc<AtomicU64>>>;

/// The counts, shared with the installed recorder.
#[derive(Debug, Clone)]
pub(crate) struct Attempts(Arc<Counts>);

/// The counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot(BTreeMap<(String, String), u64>);

/// What happened between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    /// Attempts that connected.
    pub(crate) successes: u64,
    /// Attempts that failed or timed out, by category (`failure` and
    /// `timeout` events), in category order.
    pub(crate) failures: Vec<(String, u64)>,
}

impl Attempts {
    /// Installs the recorder for this process; `None` if another recorder
    /// was installed first (the counts are then unknown).
    pub(crate) fn install() -> Option<Self> {
        let counts = Arc::new(Counts::default());
        metrics::set_global_recorder(Recorder(counts.clone()))
            .ok()
            .map(|()| Self(counts))
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Snapshot(
            counts
                .iter()
                .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
                .collect(),
        )
    }
}

impl Snapshot {
    /// The attempts that ended after `earlier` was taken.
    pub(crate) fn since(&self, earlier: &Snapshot) -> Delta {
        let mut delta = Delta::default();
        let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
        for ((event, category), now) in &self.0 {
            let before = earlier
                .0
                .get(&(event.clone(), category.clone()))
                .copied()
                .unwrap_or(0);
            let n = now.saturating_sub(before);
            if n == 0 {
                continue;
            }
            match event.as_str() {
                "success" => delta.successes += n,
                "failure" | "timeout" => *failures.entry(category).or_default() += n,
                _ => {}
            }
        }
        delta.failures = failures
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        delta
    }
}

/// Counts [`CONNECTIONS`]; every other metric is a no-op.
struct Recorder(Arc<Counts>);

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() != CONNECTIONS {
            return Counter::noop();
        }
        let label = |name: &str| {
            key.labels()
                .find(|l| l.key() == name)
                .map(|l| l.value().to_owned())
                .unwrap_or_default()
        };
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let counter = counts
            .entry((label("event"), label("category")))
            .or_default()
            .clone();
        Counter::from_arc(counter)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_counts_successes_and_failures_by_category() {
        let key = |e: &str, c: &str| (e.to_owned(), c.to_owned());
        let before = Snapshot(BTreeMap::from([
            (key("connect_start", "none"), 3),
            (key("success", "none"), 2),
            (key("failure", "proxy_connect"), 1),
        ]));
        let after = Snapshot(BTreeMap::from([
            (key("connect_start", "none"), 5),
            (key("success", "none"), 3),
            (key("failure", "proxy_connect"), 2),
            (key("timeout", "timeout"), 1),
            (key("disconnect", "none"), 4),
        ]));
        let d = after.since(&before);
        assert_eq!(d.successes, 1);
        assert_eq!(
            d.failures,
            vec![("proxy_connect".to_owned(), 1), ("timeout".to_owned(), 1)]
        );
        assert_eq!(after.since(&after), Delta::default());
    }
}
