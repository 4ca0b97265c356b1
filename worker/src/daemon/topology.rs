//! The queues and exchanges a worker needs, declared at every (re)connect,
//! idempotently.
//!
//! ```text
//! producers ─ jobs ─────────→ monteur.jobs.interactive ┐ (quorum; dead letters
//!           └ jobs ─────────→ monteur.jobs ────────────┤  → monteur.dlx → monteur.jobs.dead)
//!           └ cancels ──────→ monteur.cancel ──→ one worker: marker, audit,
//!                                                 then monteur.control (fanout)
//!                                                 → every worker's own queue
//! workers ─ events ─→ monteur.events (topic, job.<event>)
//!         └ audit ──→ monteur.audit (topic) → monteur.audit (quorum)
//! ```

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};
use tracing::warn;

use crate::config::WorkerConfig;

fn quorum(extra: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    for (k, v) in extra {
        t.insert(k.into(), v);
    }
    t
}

const DURABLE_QUEUE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// Declares the exchanges and durable queues.
pub(super) async fn declare(
    conn: &Connection,
    channel: &Channel,
    c: &WorkerConfig,
) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            c.dead_letter_exchange.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    for exchange in [&c.events_exchange, &c.audit_exchange] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    channel
        .exchange_declare(
            c.control_exchange.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    // The dead letters (bounded in number and age, oldest dropped first: a
    // flood of junk must not fill the broker's disk and stop the audit
    // publishes every job waits on), and the audit events (unbounded: kept
    // even when nobody reads them yet), each bound to its exchange.
    let dead_letter_bounds = vec![
        (
            "x-max-length",
            AMQPValue::LongLongInt(i64::from(c.dead_letter_max_length)),
        ),
        (
            "x-message-ttl",
            AMQPValue::LongLongInt((c.dead_letter_ttl_s * 1000) as i64),
        ),
        ("x-overflow", AMQPValue::LongString("drop-head".into())),
    ];
    declare_dead_letter_queue(conn, channel, c, dead_letter_bounds).await?;
    channel
        .queue_declare(
            c.audit_queue.as_str().into(),
            DURABLE_QUEUE,
            quorum(Vec::new()),
        )
        .await?;
    for (queue, exchange, key) in [
        (
            &c.dead_letter_queue,
            &c.dead_letter_exchange,
            c.queue.as_str(),
        ),
        (&c.audit_queue, &c.audit_exchange, "#"),
    ] {
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    // Both lanes and the cancels dead-letter alike (one dead-letter queue,
    // reached by the batch queue's name).
    for queue in [&c.queue, &c.interactive_queue, &c.cancel_queue] {
        channel
            .queue_declare(queue.as_str().into(), DURABLE_QUEUE, jobs_queue_args(c))
            .await?;
    }
    Ok(())
}

/// Declares the dead-letter queue with its bounds, on a channel of its own:
/// a queue that already exists with other arguments (declared by a worker
/// from before the bounds, or with other values) makes the broker close the
/// channel (PRECONDITION_FAILED), and a fleet must not crash-loop on an
/// upgrade. Then the queue is used as it is and the operator told how to
/// bound it (a policy, which needs no redeclaration).
async fn declare_dead_letter_queue(
    conn: &Connection,
    channel: &Channel,
    c: &WorkerConfig,
    bounds: Vec<(&str, AMQPValue)>,
) -> Result<(), lapin::Error> {
    let own = conn.create_channel().await?;
    match own
        .queue_declare(
            c.dead_letter_queue.as_str().into(),
            DURABLE_QUEUE,
            quorum(bounds),
        )
        .await
    {
        Ok(_) => {
            let _ = own.close(200, "declared".into()).await;
            Ok(())
        }
        Err(e) if precondition_failed(&e) => {
            warn!(
                "the dead-letter queue exists with other arguments than worker.dead_letter_max_length and dead_letter_ttl_s: those bounds are not applied; set them with a broker policy (README, Refusals and retries)"
            );
            channel
                .queue_declare(
                    c.dead_letter_queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..DURABLE_QUEUE
                    },
                    FieldTable::default(),
                )
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

fn precondition_failed(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(a) if a.get_id() == 406)
}

fn jobs_queue_args(c: &WorkerConfig) -> FieldTable {
    quorum(vec![
        (
            "x-dead-letter-exchange",
            AMQPValue::LongString(c.dead_letter_exchange.as_str().into()),
        ),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString(c.queue.as_str().into()),
        ),
        (
            "x-dead-letter-strategy",
            AMQPValue::LongString("at-least-once".into()),
        ),
        // At-least-once dead-lettering requires it.
        ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        (
            "x-delivery-limit",
            AMQPValue::LongLongInt(i64::from(c.delivery_limit)),
        ),
        (
            "x-consumer-timeout",
            AMQPValue::LongLongInt((c.consumer_timeout_s * 1000) as i64),
        ),
    ])
}

/// This worker's own queue on the control exchange: exclusive (gone with
/// the connection), named by the broker.
pub(super) async fn control_queue(
    channel: &Channel,
    c: &WorkerConfig,
) -> Result<String, lapin::Error> {
    let q = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let name = q.name().to_string();
    channel
        .queue_bind(
            name.as_str().into(),
            c.control_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(name)
}
