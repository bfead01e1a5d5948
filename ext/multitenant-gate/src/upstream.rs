//! The upstream service and how to dial it: TCP (`HOST:PORT`) or a Unix socket, whatever the
//! request's URI says.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::http::uri::Authority;
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::GateError;

/// Dialling the upstream gives up after this long (it normally runs on the same node).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the real service listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// `HOST:PORT`, e.g. `127.0.0.1:11434` or `[::1]:8080`; a name is resolved at each new connection.
    Tcp(String),
    /// A Unix stream socket, written `unix:/path/to/socket`.
    Unix(PathBuf),
}

impl Upstream {
    /// The `Host` the gate sends upstream (unless told to keep the client's): `HOST:PORT`, or
    /// `localhost` for a Unix socket.
    pub fn authority(&self) -> &str {
        match self {
            Upstream::Tcp(a) => a,
            Upstream::Unix(_) => "localhost",
        }
    }
}

impl FromStr for Upstream {
    type Err = GateError;

    /// `unix:/PATH` or `HOST:PORT` (port required, no user info).
    fn from_str(s: &str) -> Result<Upstream, GateError> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(GateError::Upstream(
                    "--upstream unix: needs a socket path, e.g. unix:/tmp/app.sock".into(),
                ));
            }
            return Ok(Upstream::Unix(PathBuf::from(path)));
        }
        let bad =
            || GateError::Upstream(format!("--upstream {s:?} is not HOST:PORT (e.g. 127.0.0.1:11434) or unix:/PATH"));
        let authority = Authority::from_str(s).map_err(|_| bad())?;
        if s.contains('@') || authority.host().is_empty() || authority.port_u16().is_none() {
            return Err(bad());
        }
        Ok(Upstream::Tcp(s.to_string()))
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Tcp(a) => f.write_str(a),
            Upstream::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A connector for hyper-util's pooling client that always dials the configured upstream, whatever
/// the request URI names.
#[derive(Clone)]
pub(crate) struct Connector(pub(crate) Arc<Upstream>);

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let upstream = self.0.clone();
        Box::pin(async move {
            let dial = async {
                match &*upstream {
                    Upstream::Tcp(addr) => {
                        let s = TcpStream::connect(addr.as_str()).await?;
                        s.set_nodelay(true)?;
                        check_tcp_owner(&s)?;
                        Ok(Stream::Tcp(s))
                    }
                    Upstream::Unix(path) => {
                        let s = UnixStream::connect(path).await?;
                        check_owner(s.peer_cred()?.uid(), || format!("unix:{}", path.display()))?;
                        Ok(Stream::Unix(s))
                    }
                }
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
                Ok(r) => r.map(TokioIo::new),
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
            }
        })
    }
}

/// The service must be this user's own: any user on the node may listen on a loopback port or make a
/// socket first (the gate's command line names the port), and members' requests, cookies and bodies
/// must never reach their server.
fn check_owner(uid: u32, shown: impl FnOnce() -> String) -> io::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    if uid == me {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        NotOwner(format!(
            "the server at {} is run by uid {uid}, not by this gate's user (uid {me}): not forwarded",
            shown()
        )),
    ))
}

/// The upstream's server is another user's: told apart from other refusals (an unreadable socket
/// directory) so that the client's 502 line says which.
#[derive(Debug)]
pub(crate) struct NotOwner(String);

impl fmt::Display for NotOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotOwner {}

/// For an upstream on this node (a loopback address), who owns the server's end of the connection, as
/// /proc/net/tcp and tcp6 list it (an accepted socket keeps its listener's owner). Other addresses are
/// other machines: nothing to check there.
fn check_tcp_owner(s: &TcpStream) -> io::Result<()> {
    let (server, client) = (s.peer_addr()?, s.local_addr()?);
    if !server.ip().is_loopback() && server.ip().to_canonical() != client.ip().to_canonical() {
        return Ok(());
    }
    match tcp_owner(server, client) {
        Some(uid) => check_owner(uid, || server.to_string()),
        None => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("cannot tell who runs the server at {server} (/proc/net/tcp): not forwarded"),
        )),
    }
}

/// The uid of the socket whose local end is `server` and remote end `client`, from /proc/net/tcp (IPv4)
/// or /proc/net/tcp6 (IPv6, and IPv4 accepted by a dual-stack listener as `::ffff:a.b.c.d`).
fn tcp_owner(server: std::net::SocketAddr, client: std::net::SocketAddr) -> Option<u32> {
    use std::net::IpAddr;
    fn hex(ip: IpAddr, port: u16) -> String {
        let words: Vec<String> = match ip {
            IpAddr::V4(v4) => vec![format!("{:08X}", u32::from_ne_bytes(v4.octets()))],
            IpAddr::V6(v6) => {
                v6.octets().chunks(4).map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))).collect()
            }
        };
        format!("{}:{port:04X}", words.concat())
    }
    let v6 = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    };
    let mut tables = Vec::new();
    if let (IpAddr::V4(_), IpAddr::V4(_)) = (server.ip(), client.ip()) {
        tables.push(("/proc/net/tcp", hex(server.ip(), server.port()), hex(client.ip(), client.port())));
    }
    tables.push(("/proc/net/tcp6", hex(v6(server.ip()), server.port()), hex(v6(client.ip()), client.port())));
    tables.into_iter().find_map(|(table, local, remote)| {
        let text = std::fs::read_to_string(table).ok()?;
        text.lines().skip(1).find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 7 && f[1] == local && f[2] == remote).then(|| f[7].parse().ok()).flatten()
        })
    })
}

/// A connection to the upstream.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("127.0.0.1:11434".parse::<Upstream>().unwrap(), Upstream::Tcp("127.0.0.1:11434".into()));
        assert_eq!("[::1]:80".parse::<Upstream>().unwrap().authority(), "[::1]:80");
        assert_eq!("unix:/tmp/s".parse::<Upstream>().unwrap(), Upstream::Unix("/tmp/s".into()));
        for bad in ["127.0.0.1", "unix:", "", "a@b:1", "http://x:1", "host:port", "h:1/x"] {
            assert!(bad.parse::<Upstream>().is_err(), "{bad}");
        }
    }
}
