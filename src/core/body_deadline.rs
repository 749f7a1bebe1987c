//! A deadline on request bodies. actix-web bounds the time to receive a
//! request head (`TANDEM_HTTP_HEAD_TIMEOUT_MS`) but not the body: a client
//! that sends its headers and then a byte now and then would hold its
//! connection, and the handler waiting on it, for as long as it likes. Every
//! body must arrive whole within `TANDEM_HTTP_BODY_TIMEOUT_MS` of the head;
//! after that its reader gets an error, answered 408 `request_timeout`, and
//! the connection is closed. WebSocket upgrades are left alone: their
//! "body" is the socket.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::HttpMessage as _;
use futures_util::Stream;

/// The body deadline, as app data.
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub Duration);

/// What the reader of a late body sees.
const LATE_BODY: &str = "the request body did not arrive in time";

/// Whether an error from reading a body is this deadline's.
pub fn is_late_body(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut && io.to_string() == LATE_BODY)
}

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = req.app_data::<web::Data<BodyTimeout>>().map(|t| t.0);
    // Only a WebSocket handshake (a GET asking to upgrade to `websocket`)
    // goes without: any other request claiming an upgrade is a body like any.
    let websocket = req.method() == actix_web::http::Method::GET
        && req
            .headers()
            .get(actix_web::http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if let (Some(limit), false) = (limit, websocket) {
        let inner = req.take_payload();
        // A request without a body (most GETs) has nothing to wait for: no
        // timer, no allocation on that path.
        if matches!(inner, Payload::None) {
            req.set_payload(inner);
            return next.call(req).await;
        }
        let timed = Deadline {
            inner,
            timer: Box::pin(tokio::time::sleep(limit)),
            expired: false,
        };
        req.set_payload(Payload::Stream {
            payload: Box::pin(timed),
        });
    }
    next.call(req).await
}

/// The body stream, cut off at the deadline.
struct Deadline {
    inner: Payload,
    timer: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        // What has arrived is passed on first; the deadline only ends a wait.
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.expired = true;
                let late = io::Error::new(io::ErrorKind::TimedOut, LATE_BODY);
                Poll::Ready(Some(Err(PayloadError::Io(late))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
