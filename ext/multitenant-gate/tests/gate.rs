//! The gate through its library, against a real hyper upstream over real sockets.

mod common;

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use hyper::StatusCode;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

const REFUSED_LINE: &str = "multitenant: this service needs its share's key: open it from the card on your dashboard, or send Authorization: Bearer <key>\n";

fn header_line<'a>(echo: &'a str, name: &str) -> Option<&'a str> {
    echo.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[tokio::test]
async fn bearer_passes_and_is_not_forwarded() {
    let up = Upstream::start_tcp();
    let gate = start_gate(up.gate_upstream(), KEY, false);
    let (status, _, echo) = fetch(gate, "GET", "/api/tags?x=1", &[("authorization", &bearer(KEY))]).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert!(echo.contains("target /api/tags?x=1\n"), "{echo}");
    assert_eq!(header_line(&echo, "authorization"), None, "{echo}");
    assert_eq!(header_line(&echo, "host"), Some(up.addr.unwrap().to_string().as_str()), "Host is the upstream's");
    assert_eq!(header_line(&echo, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header_line(&echo, "x-forwarded-proto"), Some("http"));
    assert_eq!(header_line(&echo, "x-forwarded-host"), Some(gate.to_string().as_str()));
    assert_eq!(up.seen(), ["GET /api/tags?x=1"]);
}

#[tokio::test]
async fn basic_password_passes() {
    let up = Upstream::start_tcp();
    let gate = start_gate(up.gate_upstream(), KEY, false);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("anyone:{KEY}")));
    let (status, _, echo) = fetch(gate, "GET", "/", &[("authorization", &basic)]).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(header_line(&echo, "authorization"), None);
}

#[tokio::test]
async fn refused_without_the_key_and_never_forwarded() {
    let up = Upstream::start_tcp();
    let gate = start_gate(up.gate_upstream(), KEY, false);
    let other = start_gate(up.gate_upstream(), OTHER_KEY, false);
    let (_, headers, _) =
        fetch_with_body(other, "POST", "/?multitenant-login", &[("content-type", FORM)], OTHER_LOGIN).await;
    let other_cookie = cookie_pair(&headers);
    let wrong_basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("u:{OTHER_KEY}")));
    for headers in [
        vec![],
        vec![("authorization", bearer(OTHER_KEY))],
        vec![("authorization", bearer(&KEY[..31]))],
        vec![("authorization", wrong_basic)],
        vec![("authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(KEY)))],
        vec![("cookie", other_cookie.clone())],
        vec![("cookie", format!("multitenant_gate={KEY}"))],
        vec![("x-api-key", KEY.to_string())],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for (method, path) in [("GET", "/"), ("POST", "/api/generate"), ("GET", "/ws")] {
            let (status, h, body) = fetch(gate, method, path, &headers).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
            assert_eq!(h["www-authenticate"], "Bearer realm=\"multitenant\"");
            assert_eq!(body, REFUSED_LINE);
        }
    }
    assert_eq!(up.seen(), Vec::<String>::new(), "the upstream saw a refused request");
}

const FORM: &str = "application/x-www-form-urlencoded";
const LOGIN: &str = "multitenant_key=0123456789abcdef0123456789abcdef";
const OTHER_LOGIN: &str = "multitenant_key=fedcba9876543210fedcba9876543210";

/// `name=value` of the Set-Cookie header.
fn cookie_pair(headers: &hyper::HeaderMap) -> String {
    headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn login_sets_a_cookie_that_passes_and_stays_here() {
    let up = Upstream::start_tcp();
    let gate = start_gate(up.gate_upstream(), KEY, false);

    let (status, headers, _) =
        fetch_with_body(gate, "POST", "/?multitenant-login", &[("content-type", FORM)], LOGIN).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "./");
    let set = headers["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("multitenant_gate_") && set.as_bytes()[25] == b'=', "one name per share: {set}");
    assert!(set.contains("; HttpOnly") && set.contains("; SameSite=Lax"), "{set}");
    assert!(!set.to_ascii_lowercase().contains("path="), "no Path: the browser scopes it to the login URL's directory");
    assert!(!set.contains("Secure"), "{set}");
    assert!(!set.contains(KEY), "the cookie is not the key");
    let cookie = cookie_pair(&headers);

    // Behind OOD's /node/ proxy the full path arrives, and a proxy in front may say https.
    let (status, headers, _) = fetch_with_body(
        gate,
        "POST",
        "/node/c1/8080/?multitenant-login",
        &[("content-type", "application/x-www-form-urlencoded; charset=UTF-8"), ("x-forwarded-proto", "https")],
        LOGIN,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers["set-cookie"].to_str().unwrap().ends_with("; Secure"));
    assert_eq!(cookie_pair(&headers), cookie, "the same key gives the same cookie");

    let (status, _, echo) = fetch(gate, "GET", "/app/", &[("cookie", &format!("theme=dark; {cookie}; lang=en"))]).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(header_line(&echo, "cookie"), Some("theme=dark; lang=en"), "{echo}");
    let (_, _, echo) = fetch(gate, "GET", "/app/", &[("cookie", &cookie)]).await;
    assert_eq!(header_line(&echo, "cookie"), None, "{echo}");
    // Another Authorization than the gate's belongs to the app and goes through.
    let (_, _, echo) = fetch(gate, "GET", "/", &[("cookie", &cookie), ("authorization", "token app-own")]).await;
    assert_eq!(header_line(&echo, "authorization"), Some("token app-own"), "{echo}");
    assert_eq!(up.seen(), ["GET /app/", "GET /app/", "GET /"], "login requests are never forwarded");
}

#[tokio::test]
async fn bad_logins_are_answered_by_the_gate() {
    let up = Upstream::start_tcp();
    let gate = start_gate(up.gate_upstream(), KEY, false);
    let auth = bearer(KEY);
    let (status, headers, body) =
        fetch_with_body(gate, "POST", "/?multitenant-login", &[("content-type", FORM)], OTHER_LOGIN).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("set-cookie").is_none());
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains("not this service's key"), "{body}");
    let (status, ..) = fetch(gate, "GET", "/?multitenant-login", &[("authorization", &auth)]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, ..) = fetch_with_body(gate, "POST", "/x?multitenant-login", &[("content-type", FORM)], LOGIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a login outside a directory would scope the cookie too widely");
    let (status, ..) =
        fetch_with_body(gate, "POST", "/?multitenant-login", &[("content-type", "text/plain")], LOGIN).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big: &'static str = Box::leak(format!("{LOGIN}&pad={}", "x".repeat(5000)).into_boxed_str());
    let (status, ..) = fetch_with_body(gate, "POST", "/?multitenant-login", &[("content-type", FORM)], big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(up.seen(), Vec::<String>::new());
}

#[tokio::test]
async fn host_is_kept_when_asked() {
    let up = Upstream::start_tcp();
    let gate = start_gate(up.gate_upstream(), KEY, true);
    let (_, _, echo) = fetch(gate, "GET", "/", &[("authorization", &bearer(KEY)), ("host", "c1.cluster:8080")]).await;
    assert_eq!(header_line(&echo, "host"), Some("c1.cluster:8080"), "{echo}");
    assert_eq!(header_line(&echo, "x-forwarded-host"), Some("c1.cluster:8080"), "{echo}");
}

#[tokio::test]
async fn proxy_headers() {
    let up = Upstream::start_tcp();
    let gate = start_gate(up.gate_upstream(), KEY, false);
    let (_, _, echo) = fetch(
        gate,
        "GET",
        "/",
        &[
            ("authorization", &bearer(KEY)),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic eDp5"),
            ("te", "trailers"),
            ("x-forwarded-for", "10.1.2.3"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "ondemand.example.edu"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    for gone in ["connection", "x-hop", "keep-alive", "proxy-authorization", "te"] {
        assert_eq!(header_line(&echo, gone), None, "{gone} forwarded: {echo}");
    }
    assert_eq!(header_line(&echo, "x-end-to-end"), Some("kept"));
    assert_eq!(header_line(&echo, "x-forwarded-for"), Some("10.1.2.3, 127.0.0.1"));
    assert_eq!(header_line(&echo, "x-forwarded-proto"), Some("https"));
    assert_eq!(header_line(&echo, "x-forwarded-host"), Some("ondemand.example.edu"));
}

#[tokio::test]
async fn response_streams_chunk_by_chunk() {
    let up = Upstream::start_tcp();
    let gate = start_gate(up.gate_upstream(), KEY, false);
    let mut client = Client::connect(gate).await;
    let response = client.send(request("GET", "/stream", &[("authorization", &bearer(KEY))], "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // The upstream holds its last chunk until released: the first one must arrive before.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("first chunk held back");
    assert_eq!(first.unwrap().unwrap().into_data().unwrap(), Bytes::from_static(b"first\n"));
    up.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from_static(b"last\n"));
    // The kept-alive connection serves the next request.
    let (parts, body) =
        client.send(request("GET", "/small", &[("authorization", &bearer(KEY))], "")).await.into_parts();
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body.collect().await.unwrap().to_bytes(), Bytes::from_static(b"ok\n"));
}

#[tokio::test]
async fn request_body_streams() {
    let up = Upstream::start_tcp();
    let gate = start_gate(up.gate_upstream(), KEY, false);
    let mut client = Client::connect(gate).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let req = hyper::Request::post("/upload")
        .header("authorization", bearer(KEY))
        .body(http_body_util::BodyExt::boxed(ChannelBody(rx)))
        .unwrap();
    let response = tokio::spawn(async move { client.send(req).await });
    tx.send(Bytes::from(vec![b'a'; 1000])).await.unwrap();
    // The upstream has the first piece while the client still holds the rest.
    tokio::time::timeout(Duration::from_secs(5), up.upload_started.notified()).await.expect("request body held back");
    tx.send(Bytes::from(vec![b'b'; 24])).await.unwrap();
    drop(tx);
    let body = response.await.unwrap().into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, Bytes::from_static(b"received 1024 bytes\n"));
}

async fn websocket(gate: std::net::SocketAddr, auth: Option<&str>) -> Result<(), tungstenite::Error> {
    let mut req = format!("ws://{gate}/ws").into_client_request().unwrap();
    if let Some(a) = auth {
        req.headers_mut().insert("authorization", a.parse().unwrap());
    }
    let stream = tokio::net::TcpStream::connect(gate).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(req, stream).await?;
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "through the gate"] {
        ws.send(tungstenite::Message::text(text)).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
    Ok(())
}

#[tokio::test]
async fn websocket_echoes_with_the_key_and_is_refused_without() {
    let up = Upstream::start_tcp();
    let gate = start_gate(up.gate_upstream(), KEY, false);
    websocket(gate, Some(&bearer(KEY))).await.unwrap();
    match websocket(gate, None).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), StatusCode::UNAUTHORIZED),
        other => panic!("upgraded without the key: {other:?}"),
    }
    assert_eq!(up.seen(), ["GET /ws"]);
}

#[tokio::test]
async fn unix_socket_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sock");
    let up = Upstream::start_unix(&path);
    let gate = start_gate(multitenant_gate::Upstream::Unix(path), KEY, false);
    let (status, _, echo) = fetch(gate, "GET", "/x", &[("authorization", &bearer(KEY))]).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(header_line(&echo, "host"), Some("localhost"));
    websocket(gate, Some(&bearer(KEY))).await.unwrap();
    assert_eq!(up.seen(), ["GET /x", "GET /ws"]);
}

#[tokio::test]
async fn upstream_down_is_a_502_line() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let gate = start_gate(multitenant_gate::Upstream::Tcp(addr.to_string()), KEY, false);
    let (status, _, body) = fetch(gate, "GET", "/", &[("authorization", &bearer(KEY))]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body.lines().count(), 1, "{body}");
    assert!(body.starts_with("multitenant: the service behind this gate does not answer"), "{body}");
}

#[test]
fn keys_are_checked() {
    use multitenant_gate::{GateError, Key};
    use std::os::unix::fs::PermissionsExt as _;
    assert!(Key::parse(KEY, "t").is_ok());
    assert!(Key::parse("-_AZaz09".repeat(4).as_str(), "t").is_ok());
    for bad in [&KEY[..31], "", &format!("{} ", &KEY), &format!("{}+", &KEY), &"a".repeat(513)] {
        let e = Key::parse(bad, "$K").unwrap_err();
        assert!(matches!(e, GateError::KeyInvalid { .. }), "{e}");
        assert!(!e.to_string().contains(KEY) && e.to_string().lines().count() == 1, "{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Key::from_file(&path).unwrap_err();
    assert!(matches!(e, GateError::KeyFile { .. }) && e.to_string().contains("0644"), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(Key::from_file(&path).is_err());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Key::from_file(&path).is_ok(), "0600 with a trailing newline");
    assert!(matches!(Key::from_file(dir.path()), Err(GateError::KeyFile { .. })));
    assert!(matches!(Key::from_env("MULTITENANT_GATE_TEST_UNSET"), Err(GateError::KeyMissing { .. })));
    assert_eq!(format!("{:?}", Key::parse(KEY, "t").unwrap()), "Key(<redacted>)");
}

#[tokio::test]
async fn two_workers_serve_the_same() {
    let up = Upstream::start_tcp();
    let gate = start_gate_configured(up.gate_upstream(), KEY, |c| c.workers = 2);
    let (status, ..) = fetch(gate, "GET", "/", &[("authorization", &bearer(KEY))]).await;
    assert_eq!(status, StatusCode::OK);
    websocket(gate, Some(&bearer(KEY))).await.unwrap();
}

#[tokio::test]
async fn slow_headers_are_cut_off_and_connections_are_capped() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let up = Upstream::start_tcp();
    let gate = start_gate_configured(up.gate_upstream(), KEY, |c| {
        c.max_connections = 2;
        c.header_read_timeout = Duration::from_millis(300);
    });
    // Two clients that never finish their headers hold both slots (the gate takes a slot, then
    // accepts: connections are served in the order they came)...
    let start = std::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(gate).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        slow.push(s);
    }
    // ...so a third waits until the gate drops them, 300 ms after it accepted the first.
    let mut client = Client::connect(gate).await;
    let (parts, _) = client.send(request("GET", "/small", &[("authorization", &bearer(KEY))], "")).await.into_parts();
    assert_eq!(parts.status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(300), "served before a slot was free: {:?}", start.elapsed());
    for mut s in slow {
        let mut buf = [0; 64];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.expect("slow client kept");
        assert!(matches!(n, Ok(0) | Err(_)), "slow client got an answer: {n:?}");
    }
    assert_eq!(up.seen(), ["GET /small"]);
}
