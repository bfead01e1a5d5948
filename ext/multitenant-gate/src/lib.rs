//! The service gate: an authenticating reverse proxy that a Slurm job runs in front of the HTTP
//! service it shares, so that only holders of the share's key can use it.
//!
//! A request passes when it carries the key (`Authorization: Bearer <key>`, or a Basic password) or
//! the gate's cookie, which `POST <path>/?multitenant-login` with `multitenant_key=<key>` sets for
//! browsers. Passing requests are forwarded to the upstream over HTTP/1.1 (kept-alive, bodies
//! streamed both ways, upgrades such as WebSocket spliced); the gate's own credentials are taken out
//! first. Everything else gets `401` and never reaches the upstream.
//!
//! ```no_run
//! let key = multitenant_gate::Key::from_env("MULTITENANT_GATE_KEY")?;
//! let config = multitenant_gate::Config::new("0.0.0.0:8080".parse()?, "127.0.0.1:11434".parse()?, key);
//! multitenant_gate::serve(config)?; // blocks until SIGTERM or SIGINT
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod auth;
mod error;
mod key;
mod log;
mod proxy;
mod server;
mod upgrade;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use auth::{COOKIE_PREFIX, LOGIN_FIELD, LOGIN_QUERY};
pub use error::GateError;
pub use key::Key;
pub use server::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
pub use upstream::Upstream;

/// What a gate listens on, forwards to, and accepts.
#[derive(Debug)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on: the port the share publishes, e.g. `0.0.0.0:8080` (port 0: any free port).
    pub listen: SocketAddr,
    /// The real service, normally on loopback or a Unix socket. On this node it must be run by the
    /// gate's own user: a server another user started there (having taken the port first) is never
    /// sent a request, and the client gets `502`.
    pub upstream: Upstream,
    /// The share's key.
    pub key: Key,
    /// Send the client's `Host` upstream instead of the upstream's own address (Ollama, for one,
    /// answers 403 to a `Host` that is not local, hence the default).
    pub preserve_host: bool,
    /// Tokio worker threads; 0 serves everything on the thread that calls [`Gate::run`]
    /// (a current-thread runtime). Default 0: measured the faster on 2 vCPUs (docs/benchmarks.md).
    pub workers: usize,
    /// Most client connections served at once, upgraded ones included (default [`MAX_CONNECTIONS`]);
    /// further ones wait in the listen backlog. Lowered to what the descriptor limit allows.
    pub max_connections: usize,
    /// A client must send a request's headers within this long, also between requests on a kept-alive
    /// connection, or the gate closes it (default [`HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: Duration,
}

impl Config {
    /// A config with `preserve_host` off and the defaults for the rest.
    pub fn new(listen: SocketAddr, upstream: Upstream, key: Key) -> Config {
        Config {
            listen,
            upstream,
            key,
            preserve_host: false,
            workers: 0,
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// A gate whose listener is bound, not yet serving.
#[derive(Debug)]
pub struct Gate {
    listener: std::net::TcpListener,
    config: Config,
}

impl Gate {
    /// Binds the listen address (connections queue in the backlog until [`Gate::run`]).
    ///
    /// Errors: [`GateError::Bind`].
    pub fn bind(config: Config) -> Result<Gate, GateError> {
        let bind_error = |source| GateError::Bind { addr: config.listen, source };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        Ok(Gate { listener, config })
    }

    /// The bound address (with the port the system chose, when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// Serves on the calling thread until SIGTERM or SIGINT, then returns `Ok(())` without waiting for
    /// connections in flight. Once the signal handlers are in place it writes one line to stderr,
    /// `mtshare gate: listening on ADDR, forwarding to UPSTREAM`; later lines (refusals, upstream
    /// failures, a few per minute) start with `mtshare gate: ` too and never hold the key or cookie.
    ///
    /// Errors: [`GateError::Runtime`] when the runtime or the signal handlers cannot be set up.
    pub fn run(self) -> Result<(), GateError> {
        let runtime = match self.config.workers {
            0 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
            n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
        }
        .map_err(GateError::Runtime)?;
        let max_connections = raise_descriptor_limit(self.config.max_connections.max(1));
        let addr = self.local_addr();
        let Config { upstream, key, preserve_host, header_read_timeout, .. } = self.config;
        let host = HeaderValue::from_str(upstream.authority())
            .map_err(|_| GateError::Upstream(format!("--upstream {upstream} is not a valid Host")))?;
        let base = format!("http://{}", upstream.authority());
        let shown = upstream.to_string();
        let result = runtime.block_on(async move {
            let client = Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .build(upstream::Connector(Arc::new(upstream)));
            let state = Arc::new(proxy::State {
                auth: auth::Auth::new(&key),
                client,
                host,
                base,
                preserve_host,
                refused: log::RateLog::new("refused requests"),
                failed: log::RateLog::new("upstream failures"),
            });
            drop(key);
            server::run(self.listener, state, max_connections, header_read_timeout, || {
                eprintln!("mtshare gate: listening on {addr}, forwarding to {shown}");
            })
            .await
        });
        // Upgraded tunnels and pooled connections are dropped, not awaited: the job is ending.
        runtime.shutdown_background();
        result
    }
}

/// Binds and serves: [`Gate::bind`] then [`Gate::run`].
pub fn serve(config: Config) -> Result<(), GateError> {
    Gate::bind(config)?.run()
}

/// Each connection needs two descriptors (client and upstream): raise the soft limit towards the hard
/// one, and cap connections by what the limit allows.
fn raise_descriptor_limit(max_connections: usize) -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let want = (max_connections as u64).saturating_mul(2).saturating_add(64);
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return max_connections };
    let soft = if soft < want && setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).is_ok() {
        want.min(hard)
    } else {
        soft
    };
    (soft.saturating_sub(64) / 2).clamp(1, max_connections as u64) as usize
}
