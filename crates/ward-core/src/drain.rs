//! Graceful shutdown: one [`Trigger`] held by `main`, a [`Watch`] cloned into
//! every long-lived task.
//!
//! A task selects on [`Watch::signaled`] next to its work; when shutdown
//! starts it finishes what it has in hand and drops its watch (or the
//! [`Release`] guard). [`Trigger::drain`] returns once every watch is gone, or
//! when the deadline passes, so `main` can exit knowing nothing was cut off —
//! or knowing exactly that something was.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// Creates a connected trigger and watch.
pub fn channel() -> (Trigger, Watch) {
    let (signal_tx, signal_rx) = watch::channel(false);
    let (alive_tx, alive_rx) = mpsc::channel(1);
    (
        Trigger {
            signal: signal_tx,
            alive: alive_rx,
        },
        Watch {
            signal: signal_rx,
            _alive: alive_tx,
        },
    )
}

/// Starts the drain and waits for every [`Watch`] to be released.
#[derive(Debug)]
pub struct Trigger {
    signal: watch::Sender<bool>,
    alive: mpsc::Receiver<()>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every task released its watch in time.
    Complete,
    /// The deadline passed with tasks still holding a watch.
    TimedOut,
}

impl Trigger {
    /// Signals every watch and waits up to `deadline` for all to be dropped.
    pub async fn drain(mut self, deadline: Duration) -> Outcome {
        // Send fails only when no watch is left, which is the finished case.
        let _ = self.signal.send(true);
        // `recv` yields `None` once every sender (one per watch) is dropped;
        // nobody ever sends on this channel.
        match tokio::time::timeout(deadline, self.alive.recv()).await {
            Ok(_) => Outcome::Complete,
            Err(_) => Outcome::TimedOut,
        }
    }
}

/// Held by a task; tells it when to shut down, and by existing tells the
/// trigger that the task is still running.
#[derive(Debug, Clone)]
pub struct Watch {
    signal: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

impl Watch {
    /// Completes when shutdown has started. The returned guard keeps the
    /// drain waiting until it is dropped.
    pub async fn signaled(mut self) -> Release {
        // An error means the trigger was dropped without draining: treat it as
        // a shutdown too, so no task outlives its owner.
        let _ = self.signal.wait_for(|started| *started).await;
        Release { _watch: self }
    }

    /// Whether shutdown has started, without waiting.
    pub fn is_draining(&self) -> bool {
        *self.signal.borrow()
    }
}

/// Keeps a drain waiting while the task finishes in-flight work.
#[derive(Debug)]
#[must_use = "dropping the guard releases the drain at once"]
pub struct Release {
    _watch: Watch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_every_task() {
        let (trigger, watch) = channel();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        for i in 0..3u64 {
            let w = watch.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                let guard = w.signaled().await;
                // Simulated in-flight work that takes longer for later tasks.
                tokio::time::sleep(Duration::from_secs(i + 1)).await;
                done.send(i).unwrap();
                drop(guard);
            });
        }
        drop(watch);
        drop(done_tx);
        assert_eq!(
            trigger.drain(Duration::from_secs(10)).await,
            Outcome::Complete
        );
        let mut finished = Vec::new();
        while let Some(i) = done_rx.recv().await {
            finished.push(i);
        }
        assert_eq!(
            finished,
            vec![0, 1, 2],
            "drain returned before tasks finished"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn drain_times_out_on_a_stuck_task() {
        let (trigger, watch) = channel();
        let stuck = watch.clone();
        drop(watch);
        assert!(!stuck.is_draining());
        let start = tokio::time::Instant::now();
        assert_eq!(
            trigger.drain(Duration::from_secs(5)).await,
            Outcome::TimedOut
        );
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert!(stuck.is_draining());
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_trigger_releases_watchers() {
        let (trigger, watch) = channel();
        drop(trigger);
        // Must not hang: an owner that vanished means shut down.
        let _guard = watch.signaled().await;
    }
}
