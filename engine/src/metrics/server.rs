//! The HTTP side of `--metrics`: `GET /metrics` on HTTP/1.1 (hyper), on the
//! run's current-thread runtime.
//!
//! [`MetricsServer::serve`] is a future the run loop polls beside the
//! session: it accepts connections and drives each in a local task, so a
//! slow client never holds up the session, and a scrape (reading the maps)
//! runs between the session's steps. Connections are bounded in number and
//! lifetime, so no client can make memory grow.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::{Collector, Format, Source};

/// Series an aggregation exports by default (`--metrics-series-limit`).
pub const DEFAULT_SERIES_LIMIT: usize = 10_000;
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;
/// A client must send its request headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A kept-alive connection is closed after this (the scraper reconnects).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct MetricsOptions {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Series each aggregation exports at most; the rest are counted.
    pub series_limit: usize,
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Binding the address failed (in use, not ours, no permission).
    #[error("cannot serve metrics on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The `/metrics` endpoint of one session.
pub struct MetricsServer {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    scraper: Rc<Scraper>,
}

/// What answers requests: the source, and the collector's state across scrapes.
struct Scraper {
    source: Source,
    collector: RefCell<Collector>,
    /// The size of the last exposition, to allocate the next one at once.
    last_len: Cell<usize>,
    connections: Cell<usize>,
}

impl MetricsServer {
    /// Listens on `options.listen`. Needs a tokio runtime.
    pub fn bind(options: &MetricsOptions, source: Source) -> Result<Self, MetricsError> {
        let err = |source| MetricsError::Listen {
            addr: options.listen,
            source,
        };
        let std = std::net::TcpListener::bind(options.listen).map_err(err)?;
        std.set_nonblocking(true).map_err(err)?;
        let listener = tokio::net::TcpListener::from_std(std).map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        Ok(Self {
            listener,
            addr,
            scraper: Rc::new(Scraper {
                source,
                collector: RefCell::new(Collector::new(options.series_limit)),
                last_len: Cell::new(4096),
                connections: Cell::new(0),
            }),
        })
    }

    /// The address it listens on (with the port chosen, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until dropped. Cancel-safe only as a whole: poll the same
    /// future (pinned) across the caller's loop.
    pub async fn serve(&self) {
        let local = tokio::task::LocalSet::new();
        local.run_until(self.accept_loop()).await
    }

    async fn accept_loop(&self) {
        loop {
            let stream = match self.listener.accept().await {
                Ok((s, _)) => s,
                // out of fds or memory for now: try again a little later
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if self.scraper.connections.get() >= MAX_CONNECTIONS {
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let scraper = self.scraper.clone();
            scraper.connections.set(scraper.connections.get() + 1);
            tokio::task::spawn_local(async move {
                let service = {
                    let scraper = scraper.clone();
                    hyper::service::service_fn(move |req| {
                        let r = scraper.respond(&req);
                        async move { Ok::<_, Infallible>(r) }
                    })
                };
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
                scraper.connections.set(scraper.connections.get() - 1);
            });
        }
    }
}

impl Scraper {
    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path() != "/metrics" {
            let body = if req.uri().path() == "/" {
                "vprobe: metrics at /metrics\n"
            } else {
                "not found: vprobe serves /metrics\n"
            };
            let status = if req.uri().path() == "/" {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            return plain(status, body.to_string());
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n".into());
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
        let format = Format::negotiate(accept);
        let mut out = String::with_capacity(self.last_len.get() + self.last_len.get() / 8);
        let scraped = match self.collector.try_borrow_mut() {
            Ok(mut c) => self.source.scrape(&mut c, format, &mut out),
            Err(_) => return plain(StatusCode::SERVICE_UNAVAILABLE, "busy\n".into()),
        };
        if let Err(e) = scraped {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}\n", crate::message::with_causes(&e)),
            );
        }
        self.last_len.set(out.len());
        let mut r = Response::new(Full::new(Bytes::from(out)));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        r
    }
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
