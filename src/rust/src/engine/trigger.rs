//! When micro-batches run.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// A micro-batch every `interval` (Spark's ProcessingTime): the next one
    /// starts one interval after the previous one started, or at once if it
    /// took longer.
    Interval(Duration),
    /// Records flow from source to sink as they arrive; every `checkpoint`
    /// an epoch is committed (sink flushed, positions recorded).
    Continuous(Duration),
    /// Process what is available at start, commit, stop.
    Once,
}

impl Trigger {
    /// How long to wait for data after finding none.
    pub fn idle_wait(&self) -> Duration {
        match self {
            Trigger::Interval(d) if !d.is_zero() => *d,
            _ => Duration::from_millis(100),
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Interval(d) => write!(f, "micro-batch every {} ms", d.as_millis()),
            Trigger::Continuous(d) => write!(f, "continuous, checkpoint every {} ms", d.as_millis()),
            Trigger::Once => write!(f, "once"),
        }
    }
}
