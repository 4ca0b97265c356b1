//! The RabbitMQ broker used by the tests.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

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
