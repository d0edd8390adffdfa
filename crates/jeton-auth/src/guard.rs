//! The route guard: a tower layer for axum's `route_layer`, from
//! [`Gate::guard`]. It has the gate admit each request and renders its
//! refusals in the gate's [`Identity`](crate::Identity).

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{extract::Request, response::Response};
use tower::{Layer, Service};

use crate::{Access, AuthError, Gate, TokenStore, client_ip, limits};

impl<S: TokenStore> Gate<S> {
    /// One route's guard: `get(handler).route_layer(gate.guard(access))`.
    /// Refusals are rendered in the gate's [`Identity`](crate::Identity); an admitted
    /// request reaches the handler with its [`Principal`](crate::Principal)
    /// in the extensions, for the typed extractors.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use jeton_auth::{Ability, Access, Ceilings, Gate, Identity, KindSet, MemoryStore, User};
    ///
    /// const PROFILE_READ: Ability = Ability::from_static("profile:read");
    ///
    /// let identity = Identity::new("acme")?;
    /// let gate = Gate::builder(identity.clone(), MemoryStore::new(identity.tokens()))
    ///     .ceilings(Ceilings::new().user([PROFILE_READ]))
    ///     .build()?;
    /// let app: Router = Router::new().route(
    ///     "/me",
    ///     get(|User(user): User| async move { user.user_id.clone() })
    ///         .route_layer(gate.guard(Access::new(KindSet::USER, PROFILE_READ))),
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn guard(self: &Arc<Self>, access: Access) -> GuardLayer<S> {
        GuardLayer {
            gate: Arc::clone(self),
            access: Arc::new(access),
        }
    }
}

/// One route's guard, from [`Gate::guard`].
pub struct GuardLayer<S> {
    gate: Arc<Gate<S>>,
    access: Arc<Access>,
}

impl<S> Clone for GuardLayer<S> {
    fn clone(&self) -> Self {
        GuardLayer {
            gate: Arc::clone(&self.gate),
            access: Arc::clone(&self.access),
        }
    }
}

impl<S, I> Layer<I> for GuardLayer<S> {
    type Service = GuardService<S, I>;

    fn layer(&self, inner: I) -> Self::Service {
        GuardService {
            guard: self.clone(),
            inner,
        }
    }
}

/// The service of a [`GuardLayer`]: the route's handler behind its guard.
pub struct GuardService<S, I> {
    guard: GuardLayer<S>,
    inner: I,
}

impl<S, I: Clone> Clone for GuardService<S, I> {
    fn clone(&self) -> Self {
        GuardService {
            guard: self.guard.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S, I> Service<Request> for GuardService<S, I>
where
    S: TokenStore,
    I: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The service that was polled ready serves this request.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let GuardLayer { gate, access } = self.guard.clone();
        gate.start_upkeep();
        Box::pin(async move {
            if !gate.find_client_ip(&mut request) {
                return Ok(client_ip::no_peer(gate.identity()));
            }
            match gate.admit(&mut request, &access).await {
                Ok(status) => {
                    // The extractors render their refusals in it.
                    request.extensions_mut().insert(gate.identity().clone());
                    let mut response = inner.call(request).await?;
                    // A handler that refused with a limit of its own (an
                    // app's order limit, say) has set the headers of that
                    // one.
                    if let Some(status) = status
                        && !response.headers().contains_key(&limits::RATELIMIT_LIMIT)
                    {
                        limits::set_headers(response.headers_mut(), status);
                    }
                    Ok(response)
                }
                Err(error) => {
                    let mut response = gate.identity().refusal(&error);
                    // A dead session cookie is cleared: the page starts afresh.
                    if error == AuthError::InvalidToken {
                        for sessions in gate.sessions_for(&access) {
                            if sessions.has_session_cookie(request.headers()) {
                                sessions.clear(response.headers_mut());
                            }
                        }
                    }
                    Ok(response)
                }
            }
        })
    }
}
