//! The production transport: RabbitMQ topic exchange `emporium.events`, persistent messages,
//! publisher confirms, one durable queue per consumer with manual acks; two connections per
//! process, one publishing and one carrying every consumer's channel. Connections that drop
//! (broker restart, network) are re-established with backoff; until then the relay keeps events in
//! the outbox and consumers simply wait.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Mutex, Semaphore};

use super::consumer::{Consumer, Disposition};
use super::{BusSettings, Event};
use crate::health::HealthCheck;

#[derive(Clone)]
pub(super) struct RabbitBus {
    url: Arc<str>,
    names: Arc<Names>,
    /// The publishing channel (confirm mode), re-opened after a failure.
    publisher: Arc<Mutex<Option<(Connection, Channel)>>>,
    /// The connection every consumer opens its channel on.
    consumers: SharedConnection,
}

/// One connection for all of a process's consumers, each on a channel of its own. lapin runs an
/// I/O thread per connection: with a connection per consumer, a process running every context
/// had 17 of them, and their wake-ups (one per frame, on each) were most of its kernel time in
/// the checkout benchmark. Publishing keeps its own connection, so that the broker's flow
/// control, which blocks a publishing connection, never stalls the consumers that drain queues.
#[derive(Clone, Default)]
struct SharedConnection(Arc<Mutex<Option<Arc<Connection>>>>);

impl SharedConnection {
    /// A new channel on the shared connection, which is (re)opened when there is none or it
    /// dropped. Each consumer that lost its channel to a dropped connection calls this; the
    /// first reopens it, the others get channels on the new one.
    async fn channel(&self, url: &str, names: &Names) -> Result<(Arc<Connection>, Channel), String> {
        let mut shared = self.0.lock().await;
        if let Some(connection) = shared.as_ref().filter(|c| c.status().connected()) {
            match connection.create_channel().await {
                Ok(channel) => return Ok((connection.clone(), channel)),
                Err(error) => tracing::warn!(%error, "no new channel on the consumers' connection; reconnecting"),
            }
        }
        *shared = None;
        let (connection, channel) = open(url, names).await?;
        let connection = Arc::new(connection);
        *shared = Some(connection.clone());
        Ok((connection, channel))
    }
}

/// Exchange and queue names for one namespace.
struct Names {
    exchange: String,
    namespace: String,
    queue_expiry_ms: Option<u32>,
}

impl Names {
    fn queue(&self, consumer: &Consumer) -> String {
        if consumer.every_replica() {
            // One queue per process, so that every replica gets every event.
            format!(
                "{}.{}.{}.{}",
                self.namespace,
                consumer.context(),
                consumer.name(),
                consumer.instance().simple()
            )
        } else {
            format!("{}.{}.{}", self.namespace, consumer.context(), consumer.name())
        }
    }
}

const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);
/// How often a consumer asks the broker for its queue's depth (a passive declare).
const QUEUE_DEPTH_EVERY: Duration = Duration::from_secs(5);

/// `events_broker_connected{context, consumer}`: 1 while the consumer holds a live connection,
/// 0 from the moment it lost it (set back when it returns).
struct Connected {
    context: &'static str,
    consumer: &'static str,
}

impl Connected {
    fn new(consumer: &Consumer) -> Self {
        metrics::gauge!("events_broker_connected", "context" => consumer.context(), "consumer" => consumer.name())
            .set(1.0);
        Self {
            context: consumer.context(),
            consumer: consumer.name(),
        }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!("events_broker_connected", "context" => self.context, "consumer" => self.consumer).set(0.0);
    }
}

/// How long a replica's own queue survives without its consumer.
const REPLICA_QUEUE_EXPIRY_MS: u32 = 5 * 60 * 1000;

/// The largest AMQP frame asked for unless the URL says otherwise (`?frame_max=`). lapin keeps
/// 32 frames of send and of receive buffer per connection, zero-filled: at RabbitMQ's default
/// (128 KiB) that was 8 MiB resident per connection, 40 MiB of an idle catalog process with its
/// five. Bodies larger than a frame travel as several frames; events are a few KiB.
const FRAME_MAX: u32 = 16 * 1024;

async fn open(url: &str, names: &Names) -> Result<(Connection, Channel), String> {
    crate::install_tls_provider();
    let mut uri: lapin::uri::AMQPUri = url.parse()?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    let connection = Connection::connect_uri(uri, ConnectionProperties::default())
        .await
        .map_err(|e| e.to_string())?;
    let channel = connection.create_channel().await.map_err(|e| e.to_string())?;
    channel
        .exchange_declare(
            names.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok((connection, channel))
}

impl RabbitBus {
    pub async fn connect(url: &str, settings: &BusSettings) -> Result<Self, String> {
        let names = Names {
            exchange: format!("{}.events", settings.namespace),
            namespace: settings.namespace.clone(),
            queue_expiry_ms: settings
                .queue_expiry
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
        };
        let (connection, channel) = open(url, &names).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            url: Arc::from(url),
            names: Arc::new(names),
            publisher: Arc::new(Mutex::new(Some((connection, channel)))),
            consumers: SharedConnection::default(),
        })
    }

    /// Publishes every event and waits for the broker to confirm all of them (persisted).
    pub async fn publish_batch(&self, events: &[(Event, String)]) -> Result<(), String> {
        let mut guard = self.publisher.lock().await;
        if guard
            .as_ref()
            .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
        {
            *guard = None;
            let (connection, channel) = open(&self.url, &self.names).await.inspect_err(|_| {
                metrics::gauge!("events_broker_publisher_connected").set(0.0);
            })?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            *guard = Some((connection, channel));
        }
        metrics::gauge!("events_broker_publisher_connected").set(1.0);
        let Some((_, channel)) = guard.as_ref() else {
            return Err("no channel".into());
        };
        let result = publish_on(channel, &self.names.exchange, events).await;
        if result.is_err() {
            // Whatever state the channel is in, start over with a fresh one next time.
            *guard = None;
            metrics::gauge!("events_broker_publisher_connected").set(0.0);
        }
        result
    }

    /// Messages ready in the consumers' queues, not yet handed to a consumer (a passive declare
    /// of each, on a connection of its own).
    pub async fn ready_messages(&self, consumers: &[Arc<Consumer>]) -> Result<u64, String> {
        let (connection, channel) = open(&self.url, &self.names).await?;
        let mut ready = 0;
        for consumer in consumers {
            let passive = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            let queue = self.names.queue(consumer);
            let declared = channel
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
                .map_err(|e| format!("queue {queue}: {e}"))?;
            ready += u64::from(declared.message_count());
        }
        let _ = connection.close(200, "counted".into()).await;
        Ok(ready)
    }

    /// Declares the consumer's queue and consumes from it (reconnecting) until `stop` turns true.
    pub async fn subscribe(
        &self,
        consumer: Arc<Consumer>,
        prefetch: u16,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        // Declare now, so a subscription that cannot exist fails start-up instead of later.
        let (connection, channel) = open(&self.url, &self.names).await.map_err(anyhow::Error::msg)?;
        declare_queue(&channel, &self.names, &consumer)
            .await
            .map_err(anyhow::Error::msg)?;
        let _ = connection.close(200, "declared".into()).await;
        let url = self.url.clone();
        let names = self.names.clone();
        let shared = self.consumers.clone();
        let task = tokio::spawn(async move {
            let mut delay = Duration::from_millis(250);
            loop {
                match consume(&shared, &url, &names, &consumer, prefetch, &mut stop).await {
                    Ok(()) => return,
                    Err(error) => tracing::warn!(consumer = consumer.name(), %error,
                        retry_in_ms = delay.as_millis() as u64, "event consumer lost RabbitMQ; reconnecting"),
                }
                tokio::select! {
                    () = super::stopped(&mut stop) => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            }
        });
        Ok(task)
    }
}

async fn publish_on(channel: &Channel, exchange: &str, events: &[(Event, String)]) -> Result<(), String> {
    let mut confirms = Vec::with_capacity(events.len());
    for (event, envelope) in events {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(event.id.to_string().into())
            .with_type(event.event_type.as_str().into())
            .with_app_id(event.source.as_str().into());
        let confirm = channel
            .basic_publish(
                exchange.into(),
                event.event_type.as_str().into(),
                BasicPublishOptions::default(),
                envelope.as_bytes(),
                properties,
            )
            .await
            .map_err(|e| e.to_string())?;
        confirms.push(confirm);
    }
    for confirm in confirms {
        let confirmation = confirm.await.map_err(|e| e.to_string())?;
        if confirmation.is_nack() {
            return Err("the broker refused (nacked) a message".into());
        }
    }
    Ok(())
}

async fn declare_queue(channel: &Channel, names: &Names, consumer: &Consumer) -> Result<(), String> {
    let queue = names.queue(consumer);
    let mut arguments = FieldTable::default();
    // A replica's own queue outlives a short reconnect (keeping what arrived meanwhile) but not
    // the replica: a queue nobody consumed for a few minutes is deleted by the broker.
    let expiry_ms = if consumer.every_replica() {
        Some(
            names
                .queue_expiry_ms
                .unwrap_or(REPLICA_QUEUE_EXPIRY_MS)
                .min(REPLICA_QUEUE_EXPIRY_MS),
        )
    } else {
        names.queue_expiry_ms
    };
    if let Some(ms) = expiry_ms {
        arguments.insert("x-expires".into(), lapin::types::AMQPValue::LongUInt(ms));
    }
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                // A replica's queue is gone with its process anyway; a broker restart may drop it.
                durable: !consumer.every_replica(),
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .map_err(|e| e.to_string())?;
    for pattern in consumer.patterns() {
        channel
            .queue_bind(
                queue.as_str().into(),
                names.exchange.as_str().into(),
                (*pattern).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Consumes until the connection drops (an error) or `stop` turns true (`Ok`, once the deliveries
/// in hand are finished). Each delivery is acked only after it was handled, found to be a
/// duplicate, or dead-lettered; otherwise it is requeued.
async fn consume(
    shared: &SharedConnection,
    url: &str,
    names: &Names,
    consumer: &Arc<Consumer>,
    prefetch: u16,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    // Held so the connection outlives this consumer's use of it even if the others reconnect.
    let (_connection, channel) = shared.channel(url, names).await?;
    declare_queue(&channel, names, consumer).await?;
    channel
        .basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let tag = format!("{}-{}", consumer.name(), uuid::Uuid::now_v7().simple());
    let mut deliveries = channel
        .basic_consume(
            names.queue(consumer).as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(consumer = consumer.name(), queue = %names.queue(consumer), "consuming events from RabbitMQ");
    let _connected = Connected::new(consumer);
    let (context, name) = (consumer.context(), consumer.name());
    let queue = names.queue(consumer);
    let mut depth_tick = tokio::time::interval(QUEUE_DEPTH_EVERY);
    depth_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = Arc::new(Semaphore::new(usize::from(prefetch.max(1))));
    loop {
        let next = tokio::select! {
            _ = depth_tick.tick() => {
                // Ready messages waiting in the queue (not counting the unacknowledged ones).
                let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
                match channel.queue_declare(queue.as_str().into(), passive, FieldTable::default()).await {
                    Ok(q) => metrics::gauge!("events_queue_depth", "context" => context, "consumer" => name)
                        .set(f64::from(q.message_count())),
                    Err(error) => tracing::debug!(%error, %queue, "queue depth unavailable"),
                }
                continue;
            }
            () = super::stopped(stop) => {
                // Let the handlers in progress finish (they use the database, still open), then
                // leave: closing the channel hands anything unacknowledged back to the queue.
                let _ = in_flight.acquire_many(u32::from(prefetch.max(1))).await;
                let _ = channel.close(200, "shutting down".into()).await;
                return Ok(());
            }
            next = deliveries.next() => next,
        };
        let Some(delivery) = next else { break };
        let delivery = delivery.map_err(|e| e.to_string())?;
        let permit = in_flight.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        if delivery.redelivered {
            metrics::counter!("events_redeliveries_total", "context" => context, "consumer" => name).increment(1);
        }
        let unacked = metrics::gauge!("events_consumer_unacked", "context" => context, "consumer" => name);
        unacked.increment(1.0);
        let consumer = consumer.clone();
        tokio::spawn(async move {
            let outcome = match consumer.process(&delivery.data).await {
                Disposition::Ack => delivery.ack(BasicAckOptions::default()).await,
                Disposition::Requeue => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await
                }
            };
            // A lost ack means redelivery, which the inbox absorbs.
            if let Err(error) = outcome {
                tracing::warn!(%error, "acknowledging a delivery failed; it will be redelivered");
            }
            unacked.decrement(1.0);
            drop(permit);
        });
    }
    Err("the delivery stream ended".into())
}

#[async_trait::async_trait]
impl HealthCheck for RabbitBus {
    fn name(&self) -> String {
        "events.rabbitmq".into()
    }
    async fn check(&self) -> Result<(), String> {
        let guard = self.publisher.lock().await;
        if guard.as_ref().is_some_and(|(c, _)| c.status().connected()) {
            return Ok(());
        }
        drop(guard);
        // The publishing connection is re-opened lazily; probe the broker directly.
        let (connection, _) = open(&self.url, &self.names).await?;
        let _ = connection.close(200, "health check".into()).await;
        Ok(())
    }
}
