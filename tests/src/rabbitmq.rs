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

/// The broker's management API port (`MONTEUR_TEST_MANAGEMENT_PORT`, else
/// 15672, where scripts/services.sh starts it on loopback).
pub fn management_port() -> u16 {
    std::env::var("MONTEUR_TEST_MANAGEMENT_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(15672)
}

/// A queue's depth as the management API reports it, what KEDA's RabbitMQ
/// scaler (protocol http) reads: `(ready, unacknowledged)`. The broker
/// refreshes these figures every `collect_statistics_interval` (1 s as
/// scripts/services.sh configures it), so they lag the queue by up to that.
/// `None` when the API cannot be reached or does not know the queue yet.
pub async fn queue_depth(queue: &str) -> Option<(u64, u64)> {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let auth = base64::engine::general_purpose::STANDARD.encode("guest:guest");
    let path = format!("/api/queues/%2F/{}", percent_encode(queue));
    // HTTP/1.0: the whole body, unchunked, then the connection closes.
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\r\n");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", management_port()))
            .await
            .ok()?;
        s.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some((
        v["messages_ready"].as_u64()?,
        v["messages_unacknowledged"].as_u64()?,
    ))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
