//! A deadline for request bodies. actix-web times the request head only
//! (`client_request_timeout`): a client that sends headers with a `Content-Length` and then
//! nothing would hold its connection, and the handler waiting for the body, forever. This
//! middleware gives every body a deadline, counted from when the request reaches the app
//! (right after its head was read): a read still waiting then fails, and the request is
//! answered 408 `request_timeout` with `Connection: close`.
//!
//! A body that was not read to its end (the deadline passed, or the handler answered without
//! reading it, a 401 say) is kept until the response is sent: actix-http then closes the
//! connection after the response. Dropped earlier, a chunked body would be drained instead,
//! for as long as the client keeps sending it.

use std::cell::{Cell, RefCell};
use std::future::Future as _;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, Transform};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::rt::time::{sleep_until, Instant, Sleep};
use actix_web::web::Bytes;
use actix_web::{HttpMessage, ResponseError};
use futures_core::future::LocalBoxFuture;
use futures_core::Stream;
use std::future::{ready, Ready};

use crate::error::ApiError;

/// How long a request body may take to arrive unless told otherwise.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The request body, shared between the middleware and the handler's view of it.
type SharedPayload = Rc<RefCell<Option<Payload>>>;

/// The middleware. A request without a body (`GET /me`, `/healthz`) passes straight
/// through, with no allocation or timer; one with a body goes through [`limit_body_time`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDeadline(pub(crate) Duration);

impl<S, B> Transform<S, ServiceRequest> for BodyDeadline
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, HeldBody>>;
    type Error = actix_web::Error;
    type Transform = BodyDeadlineService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BodyDeadlineService {
            service: Rc::new(service),
            timeout: self.0,
        }))
    }
}

/// [`BodyDeadline`] around one service.
pub(crate) struct BodyDeadlineService<S> {
    service: Rc<S>,
    timeout: Duration,
}

impl<S, B> Service<ServiceRequest> for BodyDeadlineService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, HeldBody>>;
    type Error = actix_web::Error;
    type Future = DeadlineFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        match req.take_payload() {
            Payload::None => DeadlineFuture::Plain {
                fut: self.service.call(req),
            },
            body => {
                req.set_payload(body);
                DeadlineFuture::Timed {
                    fut: Box::pin(limit_body_time(self.timeout, req, self.service.clone())),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`BodyDeadlineService`]: the inner service's own future when there is
    /// no body, the deadline's otherwise.
    #[project = DeadlineProjection]
    pub(crate) enum DeadlineFuture<F, B> {
        Plain { #[pin] fut: F },
        Timed { fut: LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B, HeldBody>>, actix_web::Error>> },
    }
}

impl<F, B> std::future::Future for DeadlineFuture<F, B>
where
    F: std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B, HeldBody>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DeadlineProjection::Plain { fut } => {
                fut.poll(cx).map_ok(ServiceResponse::map_into_left_body)
            }
            DeadlineProjection::Timed { fut } => fut.as_mut().poll(cx),
        }
    }
}

/// A request with a body: wraps it in a deadline, answers 408 when it passed, and keeps an
/// unread body until the response is sent.
async fn limit_body_time<S, B>(
    timeout: Duration,
    mut req: ServiceRequest,
    service: Rc<S>,
) -> Result<ServiceResponse<EitherBody<B, HeldBody>>, actix_web::Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let body = match req.take_payload() {
        Payload::None => {
            return service
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        body => body,
    };
    let shared: SharedPayload = Rc::new(RefCell::new(Some(body)));
    let expired = Rc::new(Cell::new(false));
    let timed = Deadline {
        inner: shared.clone(),
        sleep: Box::pin(sleep_until(Instant::now() + timeout)),
        expired: expired.clone(),
    };
    req.set_payload(Payload::from(
        Box::pin(timed) as Pin<Box<dyn Stream<Item = _>>>
    ));
    let res = service.call(req).await?;
    let unread = shared
        .try_borrow_mut()
        .ok()
        .and_then(|mut body| body.take());
    let res = if expired.get() {
        // Whatever the handler made of the failed read (a 400 most likely), the answer is
        // 408, and the connection goes: the rest of the body may still be on its way.
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
        ServiceResponse::new(req, timeout)
    } else {
        res.map_into_boxed_body()
    };
    Ok(res.map_body(|_, body| EitherBody::right(HeldBody { body, unread })))
}

/// A response body that holds on to the request's unread body until it has been sent.
pub(crate) struct HeldBody {
    body: BoxBody,
    unread: Option<Payload>,
}

impl std::fmt::Debug for HeldBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldBody")
            .field("unread", &self.unread.is_some())
            .finish_non_exhaustive()
    }
}

impl MessageBody for HeldBody {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// A body that fails once its deadline has passed while a read still waits for data.
struct Deadline {
    inner: SharedPayload,
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
        let Ok(mut slot) = this.inner.try_borrow_mut() else {
            return Poll::Ready(Some(Err(PayloadError::Incomplete(None))));
        };
        let Some(body) = slot.as_mut() else {
            return Poll::Ready(None);
        };
        // What has arrived is handed out even after the deadline: only waiting is cut short.
        if let Poll::Ready(item) = Pin::new(body).poll_next(cx) {
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
