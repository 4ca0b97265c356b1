//! The RabbitMQ broker used by the tests.

use std::time::Duration;

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::START_HINT;

/// `MONTEUR_TEST_AMQP_URL`, or the local broker's guest account.
pub fn url() -> String {
    std::env::var("MONTEUR_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// Connects to the test broker, or panics saying why and how to fix it.
pub async fn connect() -> Connection {
    let url = url();
    match tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!("RabbitMQ is not reachable at {url}: {e}; {START_HINT}"),
        Err(_) => panic!("RabbitMQ at {url} did not answer within 10 s; {START_HINT}"),
    }
}

/// Waits up to `timeout` for `queue` to exist (a worker declares its
/// topology when it starts); false if it never appeared.
pub async fn wait_for_queue(queue: &str, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        // A passive declare of a missing queue closes its channel: a fresh
        // one each time.
        if let Ok(probe) = connect().await.create_channel().await
            && probe
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// A server-named, exclusive, auto-deleted queue on `ch` (no run sees
/// another's messages), bound to `(exchange, routing key)` when given;
/// returns its name.
pub async fn private_queue(
    ch: &Channel,
    bind: Option<(&str, &str)>,
) -> Result<String, lapin::Error> {
    let q = ch
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
    let name = q.name().as_str().to_string();
    if let Some((exchange, key)) = bind {
        ch.queue_bind(
            name.as_str().into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(name)
}
