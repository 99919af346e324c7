//! A context's background loops (sweepers, reconcilers, refreshers), started and stopped alike.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// A background loop of a context. It runs until the process stops (see [`Stopper`]) or the
/// context's service it works for is dropped, whichever comes first.
pub struct Worker {
    name: &'static str,
    /// The loop, built once it is given the stop signal.
    run: Box<dyn FnOnce(watch::Receiver<bool>) -> Loop + Send>,
}

type Loop = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Worker {
    /// Runs `tick` every `interval`, the first time at once, for as long as `service` lives. A
    /// slow tick delays the next ones instead of bunching them up; `tick` logs its own failures
    /// and the next tick retries.
    pub fn every<S, F, Fut>(name: &'static str, interval: Duration, service: &Arc<S>, tick: F) -> Self
    where
        S: Send + Sync + 'static,
        F: Fn(Arc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        Self::periodic(name, interval, false, service, tick)
    }

    /// As [`Worker::every`], the first time after one `interval` (for work just done at start-up).
    pub fn every_after<S, F, Fut>(name: &'static str, interval: Duration, service: &Arc<S>, tick: F) -> Self
    where
        S: Send + Sync + 'static,
        F: Fn(Arc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        Self::periodic(name, interval, true, service, tick)
    }

    fn periodic<S, F, Fut>(name: &'static str, interval: Duration, skip_first: bool, service: &Arc<S>, tick: F) -> Self
    where
        S: Send + Sync + 'static,
        F: Fn(Arc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        // Weak, so the loop never keeps a dropped context alive.
        let service = Arc::downgrade(service);
        let run = move |mut stop: watch::Receiver<bool>| -> Loop {
            Box::pin(async move {
                let mut timer = tokio::time::interval(interval);
                timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                if skip_first {
                    timer.tick().await;
                }
                loop {
                    // A tick under way is finished: stopping only cuts the wait for the next one.
                    tokio::select! {
                        _ = timer.tick() => {}
                        // A dropped stopper disables this branch: nothing will ask to stop.
                        Ok(_) = stop.wait_for(|stopping| *stopping) => break,
                    }
                    let Some(service) = service.upgrade() else { break };
                    tick(service).await;
                }
            })
        };
        Self {
            name,
            run: Box::new(run),
        }
    }

    /// A loop with its own pacing (the mail delivery worker wakes on new work); it should end
    /// when its service is dropped.
    pub fn new(name: &'static str, run: impl Future<Output = ()> + Send + 'static) -> Self {
        let run = move |mut stop: watch::Receiver<bool>| -> Loop {
            Box::pin(async move {
                tokio::select! {
                    () = run => {}
                    Ok(_) = stop.wait_for(|stopping| *stopping) => {}
                }
            })
        };
        Self {
            name,
            run: Box::new(run),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Spawns the loop for `context`; it ends at `stopper`'s signal (a periodic one after the
    /// tick under way).
    pub fn spawn(self, context: &'static str, stopper: &Stopper) -> tokio::task::JoinHandle<()> {
        let Self { name, run } = self;
        let run = run(stopper.0.subscribe());
        tokio::spawn(async move {
            run.await;
            tracing::debug!(context, worker = name, "background worker stopped");
        })
    }
}

/// Tells every [`Worker`] spawned with it to stop: the process calls [`Stopper::stop`] once the
/// server has drained and before it closes the pools, so no loop wakes up to a closed pool.
#[derive(Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Default for Stopper {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const TICK: Duration = Duration::from_millis(40);

    fn counting(count: &Arc<AtomicU32>) -> impl Fn(Arc<AtomicU32>) -> std::future::Ready<()> + Send + 'static {
        let _ = count;
        |c| {
            c.fetch_add(1, Ordering::SeqCst);
            std::future::ready(())
        }
    }

    #[tokio::test]
    async fn ticks_at_once_then_every_interval_until_stopped() {
        let count = Arc::new(AtomicU32::new(0));
        let stopper = Stopper::default();
        let handle = Worker::every("test", TICK, &count, counting(&count)).spawn("test", &stopper);
        tokio::time::sleep(TICK / 2).await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "the first tick is at once");
        tokio::time::sleep(TICK * 3).await;
        assert!(count.load(Ordering::SeqCst) >= 3);
        stopper.stop();
        tokio::time::timeout(TICK * 10, handle)
            .await
            .expect("stops at the signal")
            .expect("no panic");
        let stopped_at = count.load(Ordering::SeqCst);
        tokio::time::sleep(TICK * 3).await;
        assert_eq!(count.load(Ordering::SeqCst), stopped_at);
    }

    #[tokio::test]
    async fn every_after_waits_one_interval_and_ends_with_its_service() {
        let count = Arc::new(AtomicU32::new(0));
        let handle = Worker::every_after("test", TICK, &count, counting(&count)).spawn("test", &Stopper::default());
        tokio::time::sleep(TICK / 2).await;
        assert_eq!(count.load(Ordering::SeqCst), 0, "nothing before one interval");
        tokio::time::sleep(TICK).await;
        assert!(count.load(Ordering::SeqCst) >= 1);
        drop(count);
        tokio::time::timeout(TICK * 10, handle)
            .await
            .expect("ends once the service is gone")
            .expect("no panic");
    }

    #[tokio::test]
    async fn a_custom_loop_ends_at_the_signal() {
        let stopper = Stopper::default();
        let handle = Worker::new("test", std::future::pending()).spawn("test", &stopper);
        stopper.stop();
        tokio::time::timeout(TICK * 10, handle)
            .await
            .expect("stops at the signal")
            .expect("no panic");
    }
}
