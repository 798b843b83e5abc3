//! The node's background work, all in one place: every task has a name and a tracing span,
//! selects on one cancellation token, is tracked so shutdown can wait for it (within a
//! deadline), is listed by `dhtctl info` while it runs, and reports a failure or a panic by
//! name.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{warn, Instrument, Span};

use crate::NodeError;

/// Running tasks by name: how many of each.
type Running = Arc<Mutex<BTreeMap<&'static str, usize>>>;

#[derive(Clone)]
pub(crate) struct Tasks {
    tracker: TaskTracker,
    /// Cancelled to stop every task (first thing a leave does).
    stop: CancellationToken,
    running: Running,
}

/// Counts a task as running for as long as it lives, however it ends.
struct Registered {
    name: &'static str,
    running: Running,
}

impl Registered {
    fn new(name: &'static str, running: &Running) -> Registered {
        *running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name)
            .or_default() += 1;
        Registered {
            name,
            running: running.clone(),
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut map = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(self.name) {
            *n -= 1;
            if *n == 0 {
                map.remove(self.name);
            }
        }
    }
}

impl Tasks {
    pub(crate) fn new(stop: CancellationToken) -> Tasks {
        Tasks {
            tracker: TaskTracker::new(),
            stop,
            running: Arc::default(),
        }
    }

    /// The token every task selects on.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.stop
    }

    /// Runs `work` in the background under `name` and `span`. An error or a panic is logged
    /// with the task's name; cancellation is the task's own business (select on
    /// [`Tasks::token`]).
    pub(crate) fn spawn<F>(&self, name: &'static str, span: Span, work: F)
    where
        F: Future<Output = Result<(), NodeError>> + Send + 'static,
    {
        let registered = Registered::new(name, &self.running);
        self.tracker.spawn(
            async move {
                let _registered = registered;
                match AssertUnwindSafe(work).catch_unwind().await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!(task = name, error = %e, "background task failed"),
                    Err(_) => warn!(task = name, "background task panicked"),
                }
            }
            .instrument(span),
        );
    }

    /// Runs `work` every `every` (first after `phase`) until the token is cancelled.
    pub(crate) fn spawn_periodic<W, Fut>(
        &self,
        name: &'static str,
        span: Span,
        phase: Duration,
        every: Duration,
        work: W,
    ) where
        W: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let token = self.stop.clone();
        self.spawn(name, span, async move {
            let mut next = tokio::time::Instant::now() + phase;
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep_until(next) => {}
                }
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = work() => {}
                }
                next = tokio::time::Instant::now() + every;
            }
            Ok(())
        });
    }

    /// What is running now, by name (`name×k` when k > 1), for `dhtctl info`.
    pub(crate) fn running(&self) -> Vec<String> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, &n)| {
                if n == 1 {
                    name.to_string()
                } else {
                    format!("{name}×{n}")
                }
            })
            .collect()
    }

    /// Cancels every task and waits for them up to `deadline`; returns what was still
    /// running when it passed (abandoned).
    pub(crate) async fn stop(&self, deadline: Duration) -> Vec<String> {
        self.stop.cancel();
        self.tracker.close();
        match tokio::time::timeout(deadline, self.tracker.wait()).await {
            Ok(()) => Vec::new(),
            Err(_) => self.running(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tasks_are_listed_while_they_run_and_a_hung_one_is_reported_at_the_deadline() {
        let tasks = Tasks::new(CancellationToken::new());
        let token = tasks.token().clone();
        tasks.spawn("polite", Span::none(), async move {
            token.cancelled().await;
            Ok(())
        });
        tasks.spawn("hung", Span::none(), async {
            std::future::pending::<()>().await;
            Ok(())
        });
        tasks.spawn("failing", Span::none(), async {
            Err(NodeError::Internal("boom".into()))
        });
        tokio::task::yield_now().await;
        assert_eq!(tasks.running(), vec!["hung", "polite"]);
        let abandoned = tasks.stop(Duration::from_secs(30)).await;
        assert_eq!(abandoned, vec!["hung"]);
    }
}
