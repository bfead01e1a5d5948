//! A real upstream (hyper server), a real client, and a gate started through the library, shared by
//! the gate's tests, `mtshare`'s gate test and the benchmark (`#[path]`-included there).
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite;

pub const KEY: &str = "0123456789abcdef0123456789abcdef";
pub const OTHER_KEY: &str = "fedcba9876543210fedcba9876543210";

type Body = BoxBody<Bytes, Infallible>;

/// What the upstream saw and the levers a test pulls on it.
pub struct Upstream {
    /// TCP address, or `None` for a Unix-socket upstream.
    pub addr: Option<SocketAddr>,
    /// "METHOD /path?query" of every request that reached it.
    pub seen: Arc<Mutex<Vec<String>>>,
    /// Lets `/stream` send its last chunk.
    pub release: Arc<Notify>,
    /// Notified when `/upload` has its first body chunk.
    pub upload_started: Arc<Notify>,
}

impl Upstream {
    /// Serves on 127.0.0.1 at a free port, on a thread of its own.
    pub fn start_tcp() -> Upstream {
        let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std.set_nonblocking(true).unwrap();
        let up = Upstream::new(Some(std.local_addr().unwrap()));
        let shared = up.shared();
        spawn_runtime(async move {
            let listener = TcpListener::from_std(std).unwrap();
            loop {
                let (s, _) = listener.accept().await.unwrap();
                s.set_nodelay(true).unwrap();
                tokio::spawn(serve_connection(TokioIo::new(s), shared.clone()));
            }
        });
        up
    }

    /// Serves on a Unix socket at `path`.
    pub fn start_unix(path: &Path) -> Upstream {
        let std = std::os::unix::net::UnixListener::bind(path).unwrap();
        std.set_nonblocking(true).unwrap();
        let up = Upstream::new(None);
        let shared = up.shared();
        spawn_runtime(async move {
            let listener = UnixListener::from_std(std).unwrap();
            loop {
                let (s, _) = listener.accept().await.unwrap();
                tokio::spawn(serve_connection(TokioIo::new(s), shared.clone()));
            }
        });
        up
    }

    fn new(addr: Option<SocketAddr>) -> Upstream {
        Upstream { addr, seen: Default::default(), release: Default::default(), upload_started: Default::default() }
    }

    fn shared(&self) -> Shared {
        Shared { seen: self.seen.clone(), release: self.release.clone(), upload_started: self.upload_started.clone() }
    }

    pub fn gate_upstream(&self) -> multitenant_gate::Upstream {
        multitenant_gate::Upstream::Tcp(self.addr.unwrap().to_string())
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn spawn_runtime(f: impl std::future::Future<Output = ()> + Send + 'static) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f);
    });
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<String>>>,
    release: Arc<Notify>,
    upload_started: Arc<Notify>,
}

async fn serve_connection<I>(io: TokioIo<I>, shared: Shared)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| respond(req, shared.clone()));
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).with_upgrades().await;
}

async fn respond(mut req: Request<Incoming>, shared: Shared) -> Result<Response<Body>, Infallible> {
    let target = req.uri().path_and_query().map_or("/".to_string(), |pq| pq.to_string());
    shared.seen.lock().unwrap().push(format!("{} {target}", req.method()));
    let path = req.uri().path().to_string();
    match path.as_str() {
        // "first\n" at once, "last\n" once the test releases it: the test sees whether the first chunk
        // gets through before the response ends.
        "/stream" => {
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first\n")).await;
                shared.release.notified().await;
                let _ = tx.send(Bytes::from_static(b"last\n")).await;
            });
            Ok(Response::new(ChannelBody(rx).boxed()))
        }
        // N bytes in chunks of C: /bytes?n=N&c=C
        "/bytes" => {
            let q = req.uri().query().unwrap_or("");
            let arg = |name: &str| {
                q.split('&').find_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('='))?.parse::<usize>().ok())
            };
            let (n, c) = (arg("n").unwrap_or(0), arg("c").unwrap_or(65536).max(1));
            Ok(Response::new(Repeat { left: n, chunk: Bytes::from(vec![b'x'; c]) }.boxed()))
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut total = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    if total == 0 && !data.is_empty() {
                        shared.upload_started.notify_one();
                    }
                    total += data.len();
                }
            }
            Ok(Response::new(full(format!("received {total} bytes\n"))))
        }
        "/ws" => {
            let Some(key) = req.headers().get("sec-websocket-key") else {
                return Ok(status(StatusCode::BAD_REQUEST, "not a websocket request\n"));
            };
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on.await else { return };
                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
            let mut r = Response::new(Full::default().boxed());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = r.headers_mut();
            h.insert("upgrade", HeaderValue::from_static("websocket"));
            h.insert("connection", HeaderValue::from_static("upgrade"));
            h.insert("sec-websocket-accept", HeaderValue::from_str(&accept).unwrap());
            Ok(r)
        }
        "/small" => Ok(Response::new(full("ok\n".to_string()))),
        // Echo: method, target, then every header as "name: value".
        _ => {
            let mut text = format!("method {}\ntarget {target}\n", req.method());
            for (name, value) in req.headers() {
                text.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
            }
            let body = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
            text.push_str(&format!("body {body} bytes\n"));
            Ok(Response::new(full(text)))
        }
    }
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text)).boxed()
}

fn status(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(full(text.to_string()));
    *r.status_mut() = code;
    r
}

/// A body sent piece by piece through a channel: no length, so chunked on the wire.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// `left` bytes, in pieces of `chunk`'s size.
struct Repeat {
    left: usize,
    chunk: Bytes,
}

impl http_body::Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len());
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}

/// Starts a gate through the library on a thread of its own; returns where it listens.
pub fn start_gate(upstream: multitenant_gate::Upstream, key: &str, preserve_host: bool) -> SocketAddr {
    start_gate_configured(upstream, key, |c| c.preserve_host = preserve_host)
}

/// The same, with the config adjusted by `adjust` first.
pub fn start_gate_configured(
    upstream: multitenant_gate::Upstream,
    key: &str,
    adjust: impl FnOnce(&mut multitenant_gate::Config),
) -> SocketAddr {
    let key = multitenant_gate::Key::parse(key, "test").unwrap();
    let mut config = multitenant_gate::Config::new("127.0.0.1:0".parse().unwrap(), upstream, key);
    adjust(&mut config);
    let gate = multitenant_gate::Gate::bind(config).unwrap();
    let addr = gate.local_addr();
    std::thread::spawn(move || gate.run().unwrap());
    addr
}

/// A client connection (HTTP/1.1, kept alive).
pub struct Client {
    pub addr: SocketAddr,
    sender: hyper::client::conn::http1::SendRequest<Body>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn.with_upgrades());
        Client { addr, sender }
    }

    pub async fn send(&mut self, mut req: Request<Body>) -> Response<Incoming> {
        if !req.headers().contains_key("host") {
            req.headers_mut().insert("host", HeaderValue::from_str(&self.addr.to_string()).unwrap());
        }
        self.sender.ready().await.unwrap();
        self.sender.send_request(req).await.unwrap()
    }
}

/// A request with these headers and body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into()).boxed()).unwrap()
}

/// One request on a fresh connection; the whole body as text.
pub async fn fetch(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    fetch_with_body(addr, method, path, headers, "").await
}

pub async fn fetch_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> (StatusCode, HeaderMap, String) {
    let r = Client::connect(addr).await.send(request(method, path, headers, body)).await;
    let (parts, body) = r.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
}

pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}
