//! Health and ejection: [`Pool::handle_feedback`] moves a proxy's health
//! averages, counts its failures by category and ejects it (consecutive
//! failures, or a success rate below the pool's mean); `restore` brings it
//! back when the ejection ends (through the timers) or a probe reaches it.

use embassy_time::Instant;

use super::status::{EjectReason, Event, FeedbackError, RestoreCause};
use super::{Pool, category_from_details, ticks};
use crate::model::{ErrorCategory, FeedbackEvent, ProxyFeedback};
use crate::storage::Storage;

fn is_proxy_fault(c: ErrorCategory) -> bool {
    matches!(
        c,
        ErrorCategory::ProxyConnect
            | ErrorCategory::ProxyAuth
            | ErrorCategory::TunnelRefused
            | ErrorCategory::Timeout
    )
}

/// The category a failure counts as, and whether it counts against the
/// proxy. Without a category: a `timeout` event is a `timeout`; otherwise
/// `error_details` may name one ([`category_from_details`]); a failure
/// nothing categorises counts against the proxy, as `other`.
fn failure_category(feedback: &ProxyFeedback) -> (ErrorCategory, bool) {
    let category = match (feedback.error_category, feedback.event) {
        (Some(c), _) => c,
        (None, FeedbackEvent::Timeout) => ErrorCategory::Timeout,
        (None, _) => match feedback
            .error_details
            .as_ref()
            .and_then(|d| category_from_details(d.as_str()))
        {
            Some(c) => c,
            None => return (ErrorCategory::Other, true),
        },
    };
    (category, is_proxy_fault(category))
}

impl<const N: usize, const S: usize, St: Storage> Pool<N, S, St> {
    /// Applies one feedback event (processing the timers due at `now` first).
    /// The proxy is found by `proxy_id`, else by the URL's scheme, host and
    /// port. See the [module docs](super) for what each event and category does.
    pub fn handle_feedback(
        &mut self,
        now: Instant,
        feedback: &ProxyFeedback,
    ) -> Result<(), FeedbackError> {
        self.handle_timeout(now);
        let s = self.find_slot(feedback.proxy_id.as_ref(), feedback.proxy_url.as_ref())?;
        let t = now.as_ticks();
        let lease_ttl = ticks(self.config.lease_ttl);
        let alpha = self.config.ewma_alpha;
        let window = ticks(self.config.failure_window);
        let Some(slot) = self.slots.get_mut(s) else {
            return Err(FeedbackError::UnknownProxy);
        };
        match feedback.event {
            FeedbackEvent::ConnectStart => {
                let expired = slot.expire_leases(t, lease_ttl);
                slot.add_lease(t, lease_ttl);
                if expired > 0 {
                    let proxy = slot.id.clone();
                    self.emit(Event::LeasesExpired {
                        proxy,
                        count: expired,
                    });
                }
            }
            FeedbackEvent::Disconnect => {
                slot.release_lease();
            }
            FeedbackEvent::Success => slot.record_success(feedback.latency_ms, alpha),
            FeedbackEvent::Failure | FeedbackEvent::Timeout => {
                slot.release_lease();
                let (category, proxy_fault) = failure_category(feedback);
                slot.count_failure(category, t, window);
                if proxy_fault {
                    slot.record_failure(alpha);
                    self.refresh(s);
                    self.maybe_eject(s, t);
                } else if category == ErrorCategory::GeoBlocked {
                    let until = t.saturating_add(ticks(self.config.geo_block_cooldown));
                    self.cool_down(s, &feedback.exchange_id, category, t, until);
                } else if category == ErrorCategory::RateLimited {
                    let until = t.saturating_add(ticks(self.config.rate_limit_cooldown));
                    self.cool_down(s, &feedback.exchange_id, category, t, until);
                }
            }
        }
        self.refresh(s);
        Ok(())
    }

    fn maybe_eject(&mut self, s: usize, t: u64) {
        let root = *self.tree.root();
        let mean = if root.scnt > 0 {
            root.ssum / root.scnt as f32
        } else {
            1.0
        };
        let cfg = &self.config;
        let Some(slot) = self.slots.get(s) else {
            return;
        };
        if slot.ejected_until.is_some() || !slot.enabled {
            return;
        }
        let reason = if slot.consecutive >= cfg.eject_consecutive_failures {
            EjectReason::ConsecutiveFailures
        } else if slot.samples >= cfg.eject_min_samples
            && root.scnt >= 2
            && slot.success < mean - cfg.eject_success_rate_gap
        {
            EjectReason::LowSuccessRate
        } else {
            return;
        };
        let proxy = slot.id.clone();
        if self.ejected >= self.max_ejected() {
            self.emit(Event::EjectionSuppressed { proxy, reason });
            return;
        }
        let base = ticks(self.config.eject_base);
        let max = ticks(self.config.eject_max);
        let probe = self.config.probe_interval.map(|p| ticks(p).max(1));
        let Some(slot) = self.slots.get_mut(s) else {
            return;
        };
        slot.ejections = slot.ejections.saturating_add(1);
        let until = t.saturating_add(base.saturating_mul(u64::from(slot.ejections)).min(max));
        slot.ejected_until = Some(until);
        slot.probe_at = probe.map(|p| t.saturating_add(p));
        let ejections = slot.ejections;
        self.ejected += 1;
        self.refresh(s);
        self.emit(Event::Ejected {
            proxy,
            reason,
            ejections,
            until: Instant::from_ticks(until),
        });
    }

    pub(super) fn restore(&mut self, s: usize, cause: RestoreCause) {
        let root = *self.tree.root();
        let mean = if root.scnt > 0 {
            root.ssum / root.scnt as f32
        } else {
            1.0
        };
        let Some(slot) = self.slots.get_mut(s) else {
            return;
        };
        if slot.ejected_until.take().is_none() {
            return;
        }
        slot.share_restore = false;
        slot.probe_at = None;
        slot.consecutive = 0;
        slot.samples = 0;
        slot.success = slot.success.max(mean);
        let proxy = slot.id.clone();
        self.ejected = self.ejected.saturating_sub(1);
        self.refresh(s);
        self.emit(Event::Restored { proxy, cause });
    }
}
