//! The shape the layers in front of the command service share: a wrapper
//! that hands each call, with the inner service made ready to take it, to a
//! [`Front`] that looks at the call before and the answer after.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;

/// What a layer does with one call; `inner` is ready to take it.
pub trait Front<S>: Clone + Send + 'static {
    fn call(&self, inner: S, request: http::Request<Body>) -> BoxFuture<http::Response<Body>, Infallible>;
}

/// `inner` behind `front`.
#[derive(Clone)]
pub struct Fronted<S, F> {
    inner: S,
    front: F,
}

impl<S, F> Fronted<S, F> {
    pub fn new(inner: S, front: F) -> Self {
        Fronted { inner, front }
    }
}

impl<S: NamedService, F> NamedService for Fronted<S, F> {
    const NAME: &'static str = S::NAME;
}

impl<S, F> Service<http::Request<Body>> for Fronted<S, F>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    F: Front<S>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was made ready is the one that serves this call.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        self.front.call(inner, request)
    }
}
