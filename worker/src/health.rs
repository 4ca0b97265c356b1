//! The daemon's HTTP endpoint: `/healthz` (liveness), `/readyz` (readiness)
//! and `/metrics` (Prometheus text format).
//!
//! Liveness fails when the broker connection has been down, with recovery
//! failing, for longer than `worker.recovery_stall_s`: a worker that cannot
//! reconnect is restarted by Kubernetes rather than idling forever.
//! Readiness is "consuming", never "idle": Kubernetes removes not-ready pods
//! first on scale-in, so readiness must not say how busy a worker is.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

/// Liveness and readiness state, shared with the consume loop.
#[derive(Debug)]
pub struct Health {
    consuming: AtomicBool,
    broker_down_since: Mutex<Option<Instant>>,
    stall_limit: Duration,
}

impl Health {
    pub fn new(stall_limit: Duration) -> Self {
        Self {
            consuming: AtomicBool::new(false),
            broker_down_since: Mutex::new(None),
            stall_limit,
        }
    }

    pub fn connected(&self) {
        self.consuming.store(true, Ordering::SeqCst);
        if let Ok(mut d) = self.broker_down_since.lock() {
            *d = None;
        }
    }

    pub fn disconnected(&self) {
        self.consuming.store(false, Ordering::SeqCst);
        if let Ok(mut d) = self.broker_down_since.lock() {
            d.get_or_insert_with(Instant::now);
        }
    }

    pub fn stopping(&self) {
        self.consuming.store(false, Ordering::SeqCst);
    }

    fn alive(&self) -> bool {
        self.broker_down_since
            .lock()
            .map(|d| d.is_none_or(|since| since.elapsed() < self.stall_limit))
            .unwrap_or(false)
    }
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: Metrics,
}

async fn healthz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.health.alive() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "broker unreachable\n")
    }
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.health.consuming.load(Ordering::SeqCst) {
        (StatusCode::OK, "consuming\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not consuming\n")
    }
}

async fn metrics_text(State(s): State<AppState>) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// Binds `addr` and serves the endpoints in the background.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    metrics: Metrics,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { health, metrics });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "health endpoint stopped");
        }
    });
    Ok(bound)
}
