//! A real round trip through Garage with SSE-C: the server must refuse to hand
//! back an object without its customer key.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use aws_sdk_s3::primitives::ByteStream;
use monteur_tests::s3::{self, SseCustomerKey};

fn unique_key(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("smoke/{name}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn sse_c_put_get_and_refusal_without_key() {
    let client = s3::ready_client().await;
    let bucket = s3::bucket();
    let key = unique_key("sse-c");
    let customer = SseCustomerKey::new(&[7u8; 32]);
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();

    client
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .sse_customer_algorithm(customer.algorithm)
        .sse_customer_key(&customer.key_b64)
        .sse_customer_key_md5(&customer.key_md5_b64)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();

    let got = client
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .sse_customer_algorithm(customer.algorithm)
        .sse_customer_key(&customer.key_b64)
        .sse_customer_key_md5(&customer.key_md5_b64)
        .send()
        .await
        .unwrap();
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), body.as_slice());

    let without_key = client.get_object().bucket(&bucket).key(&key).send().await;
    let err = without_key.expect_err("GET without the SSE-C key returned the object");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(400),
        "unexpected refusal: {}",
        aws_sdk_s3::error::DisplayErrorContext(&err)
    );

    let other = SseCustomerKey::new(&[8u8; 32]);
    let wrong_key = client
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .sse_customer_algorithm(other.algorithm)
        .sse_customer_key(&other.key_b64)
        .sse_customer_key_md5(&other.key_md5_b64)
        .send()
        .await;
    assert!(
        wrong_key.is_err(),
        "GET with the wrong SSE-C key returned the object"
    );

    client
        .delete_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
}
