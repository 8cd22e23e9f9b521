//! Graceful shutdown as one signal: every long-running task holds a [`Shutdown`], hears the
//! signal through it, and by dropping it says it has finished; the owner ([`Stopper`]) gives
//! the signal and then waits until every handle is gone.
//!
//! The shape is mini-redis's (`src/shutdown.rs` there): a broadcast of "stop" and a channel
//! whose closing means "all done". Being told to stop and having stopped are kept apart on
//! purpose: a task may need a while after the signal (the dispatcher lets in-flight requests
//! finish, the recorder writes what is left), and the process must not end before it has.

use tokio::sync::{mpsc, watch};

/// A task's side: whether (and when) to stop. Clone it for every task it should wait for; the
/// owner's [`Stopper::stop`] returns once every clone has been dropped.
#[derive(Debug, Clone)]
pub struct Shutdown {
    signal: watch::Receiver<bool>,
    /// Never sent on: its drop, with the task that holds it, is the message.
    _running: mpsc::Sender<()>,
}

impl Shutdown {
    /// Whether the signal was given. An owner dropped without a word (an app that was built
    /// but never served) counts as one: nobody is left to give it.
    pub fn is_shutdown(&self) -> bool {
        *self.signal.borrow() || self.signal.has_changed().is_err()
    }

    /// Waits for the signal; at once if it was already given.
    pub async fn recv(&mut self) {
        // An error is the owner gone without a word: that is the end too.
        let _ = self.signal.wait_for(|stop| *stop).await;
    }
}

/// The owner's side: hands out [`Shutdown`] handles, then stops them all.
#[derive(Debug)]
pub struct Stopper {
    signal: watch::Sender<bool>,
    running: mpsc::Sender<()>,
    finished: mpsc::Receiver<()>,
}

impl Default for Stopper {
    fn default() -> Self {
        Stopper::new()
    }
}

impl Stopper {
    pub fn new() -> Stopper {
        let (signal, _) = watch::channel(false);
        let (running, finished) = mpsc::channel(1);
        Stopper {
            signal,
            running,
            finished,
        }
    }

    /// A handle for one more task to hold until it has finished.
    pub fn handle(&self) -> Shutdown {
        Shutdown {
            signal: self.signal.subscribe(),
            _running: self.running.clone(),
        }
    }

    /// Gives the signal, then waits until every task has dropped its handle.
    pub async fn stop(self) {
        let Stopper {
            signal,
            running,
            mut finished,
        } = self;
        signal.send_replace(true);
        drop(running);
        // `None` once the last sender, the last handle, is gone.
        let _ = finished.recv().await;
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stop_waits_for_every_task_to_finish_its_work_after_the_signal() {
        let stopper = Stopper::new();
        let done = Arc::new(AtomicU32::new(0));
        for wind_down in [0u64, 3, 7] {
            let mut shutdown = stopper.handle();
            let done = done.clone();
            tokio::spawn(async move {
                shutdown.recv().await;
                tokio::time::sleep(Duration::from_secs(wind_down)).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        let started = tokio::time::Instant::now();
        stopper.stop().await;
        assert_eq!(done.load(Ordering::SeqCst), 3);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(7),
            "the slowest sets the pace"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_signal_is_seen_by_polling_and_by_waiting() {
        let stopper = Stopper::new();
        let mut early = stopper.handle();
        assert!(!early.is_shutdown());
        let polled = stopper.handle();
        let seen = tokio::spawn(async move {
            while !polled.is_shutdown() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let waiting = tokio::spawn(async move { early.recv().await });
        stopper.stop().await;
        seen.await.unwrap();
        waiting.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_handle_cloned_after_the_signal_hears_it_at_once() {
        let stopper = Stopper::new();
        let mut kept = stopper.handle();
        let stopping = tokio::spawn(stopper.stop());
        kept.recv().await;
        assert!(kept.is_shutdown());
        // A clone made now (a task that starts a helper while stopping) hears it too.
        let mut late = kept.clone();
        late.recv().await;
        drop((kept, late));
        stopping.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_still_counts_as_finished() {
        let stopper = Stopper::new();
        let mut shutdown = stopper.handle();
        let task = tokio::spawn(async move {
            shutdown.recv().await;
            panic!("a task's bug");
        });
        stopper.stop().await;
        assert!(task.await.unwrap_err().is_panic());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopper_dropped_without_stopping_stops_the_tasks_too() {
        let stopper = Stopper::new();
        let mut shutdown = stopper.handle();
        drop(stopper);
        assert!(shutdown.is_shutdown());
        shutdown.recv().await;
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_tasks_stop_returns_at_once() {
        Stopper::new().stop().await;
    }
}
