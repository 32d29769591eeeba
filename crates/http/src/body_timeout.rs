//! A deadline for request bodies. actix-web times the request head only
//! (`client_request_timeout`): a client that sends headers with a `Content-Length` and then
//! nothing would hold its connection, and the handler waiting for the body, forever. This
//! middleware gives every body a deadline, counted from when the request reaches the app
//! (right after its head was read): a read still waiting then fails, and the request is
//! answered 408 `request_timeout` with `Connection: close`.

use std::cell::Cell;
use std::future::Future as _;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::rt::time::{sleep_until, Instant, Sleep};
use actix_web::web::Bytes;
use actix_web::{HttpMessage, ResponseError};
use futures_core::Stream;

use crate::error::ApiError;

/// How long a request body may take to arrive unless told otherwise.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The middleware: wraps the body (if any) in a deadline, and answers 408 when it passed.
pub(crate) async fn limit_body_time(
    timeout: Duration,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let expired = Rc::new(Cell::new(false));
    match req.take_payload() {
        Payload::None => {}
        body => {
            let timed = Deadline {
                inner: body,
                sleep: Box::pin(sleep_until(Instant::now() + timeout)),
                expired: expired.clone(),
            };
            req.set_payload(Payload::from(
                Box::pin(timed) as Pin<Box<dyn Stream<Item = _>>>
            ));
        }
    }
    let res = next.call(req).await?;
    if !expired.get() {
        return Ok(res.map_into_left_body());
    }
    // Whatever the handler made of the failed read (a 400 most likely), the answer is 408,
    // and the connection goes: the rest of the body may still be on its way.
    let (req, _) = res.into_parts();
    let mut timeout = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "The request body did not arrive within {} s",
            timeout.as_secs_f64()
        ),
    )
    .error_response();
    timeout
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    Ok(ServiceResponse::new(req, timeout).map_into_right_body())
}

/// A body that fails once its deadline has passed while a read still waits for data.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<Sleep>>,
    expired: Rc<Cell<bool>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired.get() {
            return Poll::Ready(None);
        }
        // What has arrived is handed out even after the deadline: only waiting is cut short.
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.set(true);
                Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
