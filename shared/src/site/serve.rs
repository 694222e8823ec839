//! The gRPC server scaffolding a node and a hub share: health and
//! reflection beside the site's own services, socket options on accepted
//! connections, and the shutdown order — stop accepting, drain in-flight
//! requests, stop background tasks, close the store last.
//!
//! A binary adds its services to a [`SiteServer`] and calls
//! [`SiteServer::serve`]; every service added is reported SERVING on the
//! health service until shutdown starts.
//!
//! Transport, decided once at start: with [`SiteServer::tls`] the server
//! requires a client certificate from its CA on every connection and every
//! request carries the peer's verified identity; without it the server is
//! in insecure mode — plain text, refused on any listener that is not
//! loopback, every request marked [`InsecureLoopback`] (test and demo
//! only; see `tls::link`).

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptorLayer;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::proto::FILE_DESCRIPTOR_SET;
use crate::shutdown::{self, DRAIN_GRACE};
use crate::site::config::TlsFiles;
use crate::store::{Store, StoreError};
use crate::tls::link::{Authenticate, Bundle, BundleError, InsecureLoopback};

/// TCP keepalive on accepted connections, so a peer that vanished (a
/// district link that dropped) is noticed and its connection freed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// How long a request handler may take to answer (for a stream: to open
/// it) unless [`SiteServer::request_timeout`] says otherwise; a client's
/// shorter `grpc-timeout` wins.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why serving ended in an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not be built from the descriptors.
    #[error("build the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// The server failed while serving or draining.
    #[error("serve gRPC")]
    Serve(#[source] tonic::transport::Error),
    /// The store did not close cleanly after the server drained.
    #[error("close the store")]
    Close(#[source] StoreError),
    /// The TLS bundle could not be read or used.
    #[error("TLS bundle")]
    Bundle(#[from] BundleError),
    /// tonic refused the TLS configuration.
    #[error("configure TLS")]
    Tls(#[source] tonic::transport::Error),
    /// Plain text was asked for on a listener that is not loopback.
    #[error(
        "refusing to serve plain text on {addr}: without TLS only a loopback address is allowed (see docs/security.md)"
    )]
    PlainNotLoopback { addr: std::net::SocketAddr },
    /// The listener's address could not be read.
    #[error("read the listener's address")]
    Listener(#[source] std::io::Error),
}

/// The site's services, to be served with health and reflection.
#[derive(Debug, Default)]
pub struct SiteServer {
    routes: RoutesBuilder,
    /// Names reported SERVING on the health service.
    names: Vec<&'static str>,
    /// Mutual TLS: our certificate, the CA clients must chain to, and the
    /// deny-list; `None` serves plain text (loopback only, checked by the
    /// config).
    tls: Option<(TlsFiles, Option<PathBuf>)>,
    /// Per-request handler timeout; [`DEFAULT_REQUEST_TIMEOUT`] when unset.
    request_timeout: Option<Duration>,
}

impl SiteServer {
    pub fn new() -> SiteServer {
        SiteServer::default()
    }

    /// Adds a generated tonic service (already configured with its message
    /// size limits).
    pub fn add_service<S>(mut self, svc: S) -> SiteServer
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(svc);
        self
    }

    /// Serves with mutual TLS: `files` is our certificate, key and the CA
    /// that client certificates must chain to; serials in `revoked` are
    /// refused on every request.
    pub fn tls(mut self, files: TlsFiles, revoked: Option<PathBuf>) -> SiteServer {
        self.tls = Some((files, revoked));
        self
    }

    /// Bounds how long a handler may take to answer a request (for a
    /// streaming call: until the stream is open; the stream itself is not
    /// cut). Expired requests end with `CANCELLED` ("Timeout expired").
    pub fn request_timeout(mut self, timeout: Duration) -> SiteServer {
        self.request_timeout = Some(timeout);
        self
    }

    /// Serves on `listener` until `token` is cancelled, then drains (at most
    /// [`DRAIN_GRACE`]), waits for `tracker`'s tasks and closes `store`.
    /// `label` names the site kind in the final log line.
    ///
    /// # Errors
    /// See [`ServeError`]; the store is closed even when serving failed.
    pub async fn serve(
        self,
        listener: TcpListener,
        token: CancellationToken,
        tracker: TaskTracker,
        store: Store,
        label: &'static str,
    ) -> Result<(), ServeError> {
        let SiteServer {
            mut routes,
            names,
            tls,
            request_timeout,
        } = self;
        let mut builder =
            Server::builder().timeout(request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT));
        let auth = match tls {
            Some((files, revoked)) => {
                let bundle = Bundle::load(&files)?;
                builder = builder
                    .tls_config(bundle.server_config())
                    .map_err(ServeError::Tls)?;
                Some(Authenticate::new(revoked))
            }
            None => {
                let addr = listener.local_addr().map_err(ServeError::Listener)?;
                check_insecure_listener(addr)?;
                tracing::warn!(%addr, "serving plain text on loopback: peers are not authenticated (test and demo only)");
                None
            }
        };
        // Built first: the one step that can fail before anything is running.
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(ServeError::Reflection)?;
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in &names {
            health
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        tracker.spawn({
            // Health watchers see NOT_SERVING as soon as shutdown starts.
            let token = token.clone();
            async move {
                token.cancelled().await;
                for name in &names {
                    health
                        .set_service_status(name, ServingStatus::NotServing)
                        .await;
                }
            }
        });
        routes.add_service(health_service).add_service(reflection);
        let routes: Routes = routes.routes();

        // `Server::tcp_nodelay` applies only when tonic binds the socket
        // itself; with our own listener the accepted sockets need it set
        // here, or every small unary reply waits out Nagle + delayed ACK.
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(TCP_KEEPALIVE));
        // The one place a request learns its transport: a verified
        // certificate (TLS), or the insecure-loopback marker (plain text).
        let interceptor = move |mut request: tonic::Request<()>| match &auth {
            Some(auth) => auth.check(request),
            None => {
                request.extensions_mut().insert(InsecureLoopback);
                Ok(request)
            }
        };
        let server = builder
            .layer(InterceptorLayer::new(interceptor))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, token.clone().cancelled_owned());
        let served = shutdown::drain_server(server, &token, DRAIN_GRACE).await;
        shutdown::wait_tasks(&tracker, DRAIN_GRACE).await;
        let closed = store.close().await;
        served.map_err(ServeError::Serve)?;
        closed.map_err(ServeError::Close)?;
        tracing::info!("{label} stopped");
        Ok(())
    }
}

/// Plain text only on loopback: the check the config does, repeated where
/// the socket is, so no caller can serve plain text to a network.
fn check_insecure_listener(addr: std::net::SocketAddr) -> Result<(), ServeError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServeError::PlainNotLoopback { addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_served_on_loopback_only() {
        assert!(check_insecure_listener("127.0.0.1:7400".parse().unwrap()).is_ok());
        assert!(check_insecure_listener("[::1]:7400".parse().unwrap()).is_ok());
        for addr in ["0.0.0.0:7400", "10.1.2.3:7400", "[::]:7400"] {
            let err = check_insecure_listener(addr.parse().unwrap()).unwrap_err();
            assert!(err.to_string().contains("plain text"), "{addr}: {err}");
        }
    }
}
