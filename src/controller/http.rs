//! `/metrics`, `/healthz` and `/readyz` on one small HTTP/1 server (hyper).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::metrics::Metrics;

/// What the endpoints report.
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// Set once every watch has listed its objects.
    pub ready: AtomicBool,
    /// `POST /hook` (the Git source's webhook), when configured.
    pub hook: Option<Arc<super::webhook::Webhook>>,
}

/// Binds now (so a busy port fails startup), serves in the background.
pub async fn serve(addr: SocketAddr, health: Arc<Health>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics server: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let health = health.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let health = health.clone();
                    async move {
                        if req.method() == hyper::Method::POST && req.uri().path() == "/hook" {
                            return Ok::<_, Infallible>(hook(req, &health).await);
                        }
                        Ok::<_, Infallible>(route(&req, &health))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

/// Reads at most [`super::webhook::MAX_BODY`] bytes, then lets the webhook decide.
async fn hook(req: Request<hyper::body::Incoming>, h: &Health) -> Response<Full<Bytes>> {
    use http_body_util::{BodyExt, Limited};
    let (status, text) = match &h.hook {
        None => (StatusCode::NOT_FOUND, "no webhook configured\n"),
        Some(wh) => {
            let (parts, body) = req.into_parts();
            match Limited::new(body, super::webhook::MAX_BODY).collect().await {
                Ok(b) => wh.handle(&parts.headers, &b.to_bytes()),
                Err(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
            }
        }
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(text)))
        .expect("static response parts")
}

fn route<B>(req: &Request<B>, h: &Health) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method().as_str(), req.uri().path()) {
        ("GET", "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            h.metrics.encode(),
        ),
        ("GET", "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        ("GET", "/readyz") if h.ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, "text/plain", "ok\n".to_string())
        }
        ("GET", "/readyz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "watches not synced yet\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}
