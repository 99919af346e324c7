//! The embedded-mode transport: deliveries go straight to this process's consumers, and a batch
//! counts as published only once every matching consumer has finished with it (handled, skipped
//! as a duplicate or dead-lettered). So the outbox row stays pending until then, and a crash
//! mid-delivery means redelivery on restart, never a lost event.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::consumer::{Consumer, Disposition};
use super::{Event, topic};

#[derive(Clone, Default)]
pub(super) struct InProcessBus {
    subscribers: Arc<RwLock<Vec<Subscriber>>>,
}

struct Subscriber {
    patterns: Vec<&'static str>,
    deliveries: mpsc::UnboundedSender<Delivery>,
}

struct Delivery {
    payload: Arc<str>,
    done: oneshot::Sender<()>,
}

/// How long a delivery waits before retrying when the consumer's own database is down.
const REQUEUE_DELAY: Duration = Duration::from_secs(1);

impl InProcessBus {
    pub fn subscribe(&self, consumer: Arc<Consumer>, prefetch: u16) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
        let patterns = consumer.patterns().to_vec();
        let in_flight = Arc::new(Semaphore::new(usize::from(prefetch.max(1))));
        tokio::spawn(async move {
            while let Some(delivery) = rx.recv().await {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let consumer = consumer.clone();
                tokio::spawn(async move {
                    while consumer.process(delivery.payload.as_bytes()).await == Disposition::Requeue {
                        tokio::time::sleep(REQUEUE_DELAY).await;
                    }
                    let _ = delivery.done.send(());
                    drop(permit);
                });
            }
        });
        crate::sync::write(&self.subscribers).push(Subscriber {
            patterns,
            deliveries: tx,
        });
    }

    /// Delivers every event to every matching consumer and waits until all are done with them.
    pub async fn publish_batch(&self, events: &[(Event, String)]) -> Result<(), String> {
        let mut pending = Vec::new();
        {
            let subscribers = crate::sync::read(&self.subscribers);
            for (event, envelope) in events {
                let payload: Arc<str> = Arc::from(envelope.as_str());
                for sub in subscribers
                    .iter()
                    .filter(|s| s.patterns.iter().any(|p| topic::matches(p, &event.event_type)))
                {
                    let (done, finished) = oneshot::channel();
                    sub.deliveries
                        .send(Delivery {
                            payload: payload.clone(),
                            done,
                        })
                        .map_err(|_| "an in-process consumer has stopped".to_owned())?;
                    pending.push(finished);
                }
            }
        }
        for finished in pending {
            finished
                .await
                .map_err(|_| "an in-process consumer stopped before finishing a delivery".to_owned())?;
        }
        Ok(())
    }
}
