//! A real round trip through the broker: publish with confirms, consume, ack.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use monteur_tests::rabbitmq;

#[tokio::test]
async fn publish_with_confirm_then_consume_and_ack() {
    let conn = rabbitmq::connect().await;
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let queue = rabbitmq::private_queue(&channel, None).await.unwrap();
    let payload = format!("smoke-{}", std::process::id());
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            payload.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        confirm.is_ack(),
        "broker did not confirm the publish: {confirm:?}"
    );
    assert!(
        confirm.take_message().is_none(),
        "message was returned as unroutable"
    );

    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "monteur-smoke".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("no delivery within 10 s")
        .expect("consumer ended")
        .unwrap();
    assert_eq!(delivery.data, payload.as_bytes());
    // lapin reports a vanished channel as Ok(false), not as an error.
    assert!(delivery.ack(BasicAckOptions::default()).await.unwrap());

    let after = channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(after.message_count(), 0, "acked message still queued");
    conn.close(200, "done".into()).await.unwrap();
}
