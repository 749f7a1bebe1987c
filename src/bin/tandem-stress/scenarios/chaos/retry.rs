//! How a real client retries: the same request (same body, same
//! `Idempotency-Key`) again after a transport failure, a 5xx, 408 or 429,
//! with a growing pause, until it gets an answer or its window closes.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::Api;

/// How long one step keeps trying (a restart takes a few seconds; a
/// step still failing after this counts as an error).
pub(super) const RETRY_WINDOW: Duration = Duration::from_secs(60);
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Statuses after which the same request is sent again.
pub(super) fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Pauses that grow from 50 ms to 1 s.
pub(super) struct Backoff {
    pause: Duration,
    deadline: Instant,
}

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff {
            pause: FIRST_PAUSE,
            deadline: Instant::now() + RETRY_WINDOW,
        }
    }

    /// Waits before the next try; false once the window has closed.
    pub(super) async fn wait(&mut self) -> bool {
        if Instant::now() + self.pause >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        true
    }
}

/// One request, retried; `Err` when the window closed without an answer.
pub(super) async fn retried(
    api: &Api,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Result<(u16, Value), String> {
    let mut backoff = Backoff::new();
    loop {
        let last = match api.call_with(method, path, token, body, headers).await {
            Ok((s, v)) if !retryable(s) => return Ok((s, v)),
            Ok((s, v)) => format!("{s} {v}"),
            Err(e) => e,
        };
        if !backoff.wait().await {
            return Err(format!(
                "{method} {path}: no answer within the retry window: {last}"
            ));
        }
    }
}

/// A signed provider notification, retried like the provider retries it.
pub(super) async fn retried_raw(
    api: &Api,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<u16, String> {
    let mut backoff = Backoff::new();
    loop {
        let last = match api.http.request("POST", path, headers, body).await {
            Ok((s, _)) if !retryable(s) => return Ok(s),
            Ok((s, _)) => format!("{s}"),
            Err(e) => e,
        };
        if !backoff.wait().await {
            return Err(format!(
                "POST {path}: no answer within the retry window: {last}"
            ));
        }
    }
}
