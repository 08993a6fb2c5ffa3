//! How a running query is asked to stop.
//!
//! `stop` lets the batch in flight finish and commit; `abort` ends it at the
//! next check without a commit (at-least-once then writes it again on
//! restart). Waiting is done on a condition variable, never by spinning.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Run,
    Stop,
    Abort,
}

#[derive(Clone)]
pub struct StopSignal {
    inner: Arc<(Mutex<Level>, Condvar)>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal { inner: Arc::new((Mutex::new(Level::Run), Condvar::new())) }
    }
}

impl StopSignal {
    fn raise(&self, to: Level) {
        let (lock, cvar) = &*self.inner;
        let mut level = lock.lock().unwrap_or_else(|p| p.into_inner());
        if *level < to {
            *level = to;
        }
        cvar.notify_all();
    }

    fn level(&self) -> Level {
        *self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finish the batch in flight, then stop.
    pub fn stop(&self) {
        self.raise(Level::Stop)
    }

    /// Give up on the batch in flight.
    pub fn abort(&self) {
        self.raise(Level::Abort)
    }

    pub fn is_set(&self) -> bool {
        self.level() >= Level::Stop
    }

    pub fn is_abort(&self) -> bool {
        self.level() == Level::Abort
    }

    /// An error that unwinds the batch when it has been aborted.
    pub fn check_abort(&self) -> Result<()> {
        if self.is_abort() {
            Err(Error::aborted())
        } else {
            Ok(())
        }
    }

    /// Sleep up to `timeout`, waking early when asked to stop.
    pub fn wait(&self, timeout: Duration) {
        let (lock, cvar) = &*self.inner;
        let level = lock.lock().unwrap_or_else(|p| p.into_inner());
        if *level == Level::Run {
            let _ = cvar.wait_timeout_while(level, timeout, |l| *l == Level::Run);
        }
    }
}
