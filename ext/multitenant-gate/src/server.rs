//! The accept loop: a bounded number of connections, each served by hyper with a header-read
//! timeout, until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::log::RateLog;
use crate::proxy::{self, Conn, State};
use crate::GateError;

/// Default for [`crate::Config::max_connections`].
pub const MAX_CONNECTIONS: usize = 1024;
/// Default for [`crate::Config::header_read_timeout`]: slow senders (slowloris) and idle kept-alive
/// connections do not hold slots for ever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves until SIGTERM or SIGINT. `ready` is called once the signal handlers are in place.
pub(crate) async fn run(
    listener: std::net::TcpListener,
    state: Arc<State>,
    max_connections: usize,
    header_read_timeout: Duration,
    ready: impl FnOnce(),
) -> Result<(), GateError> {
    let listener = TcpListener::from_std(listener).map_err(GateError::Runtime)?;
    let mut term = signal(SignalKind::terminate()).map_err(GateError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(GateError::Runtime)?;
    let slots = Arc::new(Semaphore::new(max_connections));
    let accept_errors = RateLog::new("failed accepts");
    let mut minute = tokio::time::interval(Duration::from_secs(60));
    ready();
    loop {
        let accepted = tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = minute.tick() => {
                state.refused.tick();
                state.failed.tick();
                accept_errors.tick();
                continue;
            }
            accepted = accept(&listener, &slots) => accepted,
        };
        match accepted {
            Ok((stream, peer, slot)) => {
                tokio::spawn(serve_connection(stream, peer, slot, header_read_timeout, state.clone()));
            }
            Err(e) => {
                // Out of descriptors or the like: give connections in flight time to finish.
                accept_errors.note(|| format!("cannot accept a connection: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, slot))
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    header_read_timeout: Duration,
    state: Arc<State>,
) {
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn { peer, _slot: slot });
    let service = service_fn(move |req| proxy::handle(state.clone(), conn.clone(), req));
    // Errors here are the client's (went away, malformed request, too slow): nothing to report.
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}
