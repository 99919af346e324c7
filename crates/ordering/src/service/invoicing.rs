//! Invoice numbers, batched. They must have no gaps, so every paid order takes the next value
//! of one counter row, and that row stays locked until its transaction commits (on PostgreSQL a
//! WAL flush, 1–2 ms on an ordinary disk). One transaction per order made the counter the
//! checkout's queue: at 32 concurrent checkouts each waited about 10 ms for it, and no more than
//! one order per flush could be numbered. Here the orders that ask while a batch runs are numbered
//! together by the next one: one lock, one commit, however many orders.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::domain::OrderId;
use crate::events;
use crate::store::{Order, OrderStore};
use platform::sync::lock;

/// Orders numbered by one transaction at most (a bound on the statement's parameters).
const MOST_PER_BATCH: usize = 256;

type Answer = Result<Option<Order>, String>;

#[derive(Default)]
struct Queue {
    waiting: Vec<(OrderId, oneshot::Sender<Answer>)>,
    /// A task is numbering a batch and will take whatever waits when it is done.
    running: bool,
}

pub(crate) struct Invoicer {
    store: Arc<dyn OrderStore>,
    queue: Arc<Mutex<Queue>>,
}

impl Invoicer {
    pub(crate) fn new(store: Arc<dyn OrderStore>) -> Self {
        Self {
            store,
            queue: Arc::default(),
        }
    }

    /// Numbers `id` if it is paid and not numbered yet, with its `ordering.order.paid` event, and
    /// answers the order as written; `None` when there was nothing to number.
    pub(crate) async fn invoice(&self, id: OrderId) -> Answer {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = lock(&self.queue);
            queue.waiting.push((id, answer));
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            // A task of its own: it keeps numbering whoever queued meanwhile, and a caller that
            // gives up (a dropped request) does not stop a batch that others wait for.
            tokio::spawn(number_batches(self.store.clone(), self.queue.clone()));
        }
        answered
            .await
            .unwrap_or_else(|_| Err("the invoice numbering task stopped".into()))
    }
}

async fn number_batches(store: Arc<dyn OrderStore>, queue: Arc<Mutex<Queue>>) {
    let mut stopped = StopsQueue(Some(queue.clone()));
    loop {
        let batch: Vec<_> = {
            let mut queue = lock(&queue);
            if queue.waiting.is_empty() {
                queue.running = false;
                stopped.0 = None;
                return;
            }
            let n = queue.waiting.len().min(MOST_PER_BATCH);
            queue.waiting.drain(..n).collect()
        };
        let ids: Vec<OrderId> = batch.iter().map(|(id, _)| *id).collect();
        metrics::histogram!("order_invoice_batch_size").record(ids.len() as f64);
        match store.assign_invoices(&ids, super::now(), events::paid).await {
            Ok(numbered) => {
                for (id, answer) in batch {
                    let _ = answer.send(Ok(numbered.iter().find(|o| o.id == id).cloned()));
                }
            }
            Err(e) if batch.len() == 1 => {
                for (_, answer) in batch {
                    let _ = answer.send(Err(e.to_string()));
                }
            }
            Err(e) => {
                // What failed the batch may be one of its orders (a row that no longer reads):
                // each is tried alone, so the others are numbered.
                tracing::warn!(error = %e, orders = batch.len(), "an invoice batch failed; numbering its orders one at a time");
                for (id, answer) in batch {
                    let alone = store.assign_invoices(&[id], super::now(), events::paid).await;
                    let _ = answer.send(alone.map(|mut numbered| numbered.pop()).map_err(|e| e.to_string()));
                }
            }
        }
    }
}

/// Should the numbering task panic, the queue must not stay marked as running with nobody to run
/// it: its waiters are dropped (they see an error and retry) and the next caller starts afresh.
struct StopsQueue(Option<Arc<Mutex<Queue>>>);

impl Drop for StopsQueue {
    fn drop(&mut self) {
        if let Some(queue) = self.0.take() {
            let mut queue = lock(&queue);
            queue.waiting.clear();
            queue.running = false;
        }
    }
}
