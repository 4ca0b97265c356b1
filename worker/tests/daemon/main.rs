//! `monteur worker` on the real services: RabbitMQ (quorum queues, dead-letter
//! exchange, events with confirms) and Garage S3 (SSE-C and client-side
//! encryption). Each test gets its own queues, exchanges and object prefix,
//! and runs the real binary as a child process. One test binary, a module per
//! topic.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

mod chaos;
mod harness;
mod lifecycle;
mod observability;
mod outputs;
mod privacy;
mod refusals;
mod security;
