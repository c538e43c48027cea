//! Plumbing shared by the cloud key services: one tokio runtime behind the
//! synchronous [`super::KeySource`] trait, a process-wide bound on in-flight
//! calls, bounded retries with backoff, and an overall timeout.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{ErrorClass, KeyError};

/// One runtime for every key service, so connection pools and cached tokens
/// outlive a single call and callers on any thread share them.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ksec-keys")
            .enable_all()
            .build()
            .expect("cannot start the key-service runtime")
    })
}

/// Runs a key-service future to completion from synchronous code.
///
/// Outside a runtime (CLI, rayon workers) the calling thread drives it. Inside
/// someone else's runtime the future is spawned on ours and the caller waits,
/// so a `KeySource` never panics with "runtime within a runtime" and clients
/// always live on the runtime that created them.
pub(crate) fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = runtime();
    let Ok(current) = tokio::runtime::Handle::try_current() else {
        return rt.block_on(fut);
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let wait = move || rx.recv().expect("key-service task ended without a result");
    match current.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

/// How many key-service calls may be in flight at once, process-wide
/// (`KSEC_KEY_SERVICE_CONCURRENCY`, default 16): enough to hide latency when
/// a directory of files is processed, few enough not to trip rate limits.
fn limiter() -> &'static Arc<Semaphore> {
    static SEM: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SEM.get_or_init(|| {
        let n = std::env::var("KSEC_KEY_SERVICE_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(16);
        Arc::new(Semaphore::new(n))
    })
}

/// Overall deadline for one wrap/unwrap including retries
/// (`KSEC_KEY_SERVICE_TIMEOUT` seconds, default 60).
pub(crate) fn overall_timeout() -> Duration {
    Duration::from_secs(
        std::env::var("KSEC_KEY_SERVICE_TIMEOUT")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(60),
    )
}

/// Attempts per call for the services whose client does not retry by itself.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

fn retryable(e: &KeyError) -> bool {
    matches!(
        e,
        KeyError::Backend {
            class: ErrorClass::Throttled | ErrorClass::Network,
            ..
        }
    )
}

/// Runs `op` under the concurrency bound and the overall timeout; when
/// `retry` is set, throttling and network failures are retried with
/// exponential backoff and jitter (200 ms, 400 ms, …).
pub(crate) async fn call<T, F, Fut>(
    backend: &'static str,
    key: &str,
    retry: bool,
    mut op: F,
) -> Result<T, KeyError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, KeyError>>,
{
    let _permit = limiter()
        .acquire()
        .await
        .expect("the key-service limiter is never closed");
    let attempts = if retry { MAX_ATTEMPTS } else { 1 };
    let run = async {
        let mut n = 0;
        loop {
            n += 1;
            match op().await {
                Err(e) if n < attempts && retryable(&e) => {
                    let base = 200u64 << (n - 1);
                    let jitter = rand::random::<u64>() % (base / 2 + 1);
                    tracing::debug!("{backend} key {key}: attempt {n} failed ({e}), retrying");
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                }
                r => return r,
            }
        }
    };
    let limit = overall_timeout();
    match tokio::time::timeout(limit, run).await {
        Ok(r) => r,
        Err(_) => Err(KeyError::Backend {
            backend,
            key: key.to_string(),
            class: ErrorClass::Network,
            detail: format!(
                "no answer within {}s (KSEC_KEY_SERVICE_TIMEOUT)",
                limit.as_secs()
            ),
        }),
    }
}

/// `created_at`: RFC 3339, UTC, whole seconds, as sops writes it.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A service message made safe for an error line: one line, bounded, and
/// never a bearer token or secret that a misbehaving proxy echoed back.
pub(crate) fn sanitize(msg: &str) -> String {
    let one_line: String = msg
        .split_whitespace()
        .map(|w| {
            let lw = w.to_ascii_lowercase();
            if lw.starts_with("bearer") && w.len() > 20
                || lw.contains("token=")
                || lw.contains("secret=")
                || lw.contains("signature=")
                || lw.starts_with("hvs.")
                || lw.starts_with("s.") && w.len() > 20
                || lw.starts_with("eyj") && w.len() > 40
            {
                "[redacted]"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    if one_line.chars().count() > 300 {
        let mut s: String = one_line.chars().take(300).collect();
        s.push('…');
        s
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_redacts_tokens() {
        let s = sanitize(
            "denied for hvs.CAESIabcdefgh and token=abc eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIi",
        );
        assert!(!s.contains("hvs.CAES"), "{s}");
        assert!(!s.contains("token=abc"), "{s}");
        assert!(!s.contains("eyJhbGci"), "{s}");
        assert!(s.starts_with("denied for"));
    }

    #[test]
    fn block_on_inside_a_runtime_does_not_panic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let v = rt.block_on(async { block_on(async { 41 + 1 }) });
        assert_eq!(v, 42);
        let mt = tokio::runtime::Runtime::new().unwrap();
        let v = mt.block_on(async { block_on(async { 7 }) });
        assert_eq!(v, 7);
    }

    #[test]
    fn retries_are_bounded() {
        let n = std::sync::atomic::AtomicU32::new(0);
        let r: Result<(), KeyError> = block_on_local(call("test", "k", true, || {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async {
                Err(KeyError::Backend {
                    backend: "test",
                    key: "k".into(),
                    class: ErrorClass::Throttled,
                    detail: "slow down".into(),
                })
            }
        }));
        assert!(r.is_err());
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), MAX_ATTEMPTS);
        // Access denied is final: one attempt.
        n.store(0, std::sync::atomic::Ordering::SeqCst);
        let _ = block_on_local(call("test", "k", true, || {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async {
                Err::<(), _>(KeyError::Backend {
                    backend: "test",
                    key: "k".into(),
                    class: ErrorClass::AccessDenied,
                    detail: "no".into(),
                })
            }
        }));
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    fn block_on_local<F: Future>(f: F) -> F::Output {
        runtime().block_on(f)
    }
}
