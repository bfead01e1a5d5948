//! Forwarding: what a request passes through on its way to the upstream and back, and the answers
//! the gate gives itself (refusal, login, upstream failure).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, EXPECT, HOST, LOCATION,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use tokio::sync::OwnedSemaphorePermit;

use crate::auth::{Auth, LOGIN_QUERY};
use crate::log::RateLog;
use crate::upgrade;
use crate::upstream::Connector;

/// Response body: the upstream's, streamed as it comes, or one the gate writes itself.
pub(crate) type Body = Either<Incoming, Full<Bytes>>;

/// The login form is small; a bigger body is refused before it is read whole.
const LOGIN_BODY_LIMIT: usize = 4 * 1024;
const LOGIN_BODY_TIMEOUT: Duration = Duration::from_secs(30);

const REFUSED: &str = "multitenant: this service needs its share's key: open it from the card on your dashboard, or send Authorization: Bearer <key>\n";

/// What every connection of one gate shares.
pub(crate) struct State {
    pub(crate) auth: Auth,
    pub(crate) client: Client<Connector, Incoming>,
    /// `Host` sent upstream.
    pub(crate) host: HeaderValue,
    /// `http://<authority>`, the start of every upstream URI.
    pub(crate) base: String,
    pub(crate) preserve_host: bool,
    pub(crate) refused: RateLog,
    pub(crate) failed: RateLog,
}

/// One client connection: its address, and whatever must live as long as it (its slot under the
/// connection cap), including after an upgrade.
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    pub(crate) _slot: OwnedSemaphorePermit,
}

pub(crate) async fn handle(
    state: Arc<State>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if is_login(req.uri()) {
        return Ok(login(&state, conn.peer, req).await);
    }
    let verdict = state.auth.check(req.headers());
    if !verdict.passes() {
        let why = if verdict == crate::auth::Verdict::Wrong { "wrong key or cookie" } else { "no credential" };
        state.refused.note(|| format!("refused {} {} from {}: {why}", req.method(), shown(req.uri()), conn.peer.ip()));
        return Ok(refusal());
    }
    Ok(forward(&state, conn, req).await)
}

async fn forward(state: &State, conn: Arc<Conn>, mut req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return text(StatusCode::METHOD_NOT_ALLOWED, "multitenant: CONNECT is not forwarded\n");
    }
    let target = req.uri().path_and_query().filter(|pq| pq.as_str().starts_with('/'));
    let Some(Ok(uri)) = target.map(|pq| Uri::try_from(format!("{}{}", state.base, pq.as_str()))) else {
        return text(StatusCode::BAD_REQUEST, "multitenant: the request target must be a path\n");
    };
    let upgrade = if req.version() == Version::HTTP_11 { upgrade::requested(req.headers()) } else { None };
    let client_side = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    let headers = &mut parts.headers;
    let client_host = headers.get(HOST).cloned();
    strip_hop_by_hop(headers);
    state.auth.strip(headers);
    // The gate has answered (or will answer) `100 Continue` itself.
    headers.remove(EXPECT);
    match client_host.clone() {
        Some(h) if state.preserve_host => headers.insert(HOST, h),
        _ => headers.insert(HOST, state.host.clone()),
    };
    add_forwarded(headers, conn.peer, client_host);
    if let Some(protocol) = &upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol.clone());
    }
    let method = parts.method.clone();
    let shown_uri = uri.clone();
    parts.uri = uri;
    parts.version = Version::HTTP_11;

    let mut response = match state.client.request(Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(e) => {
            state.failed.note(|| format!("upstream failed for {method} {}: {}", shown(&shown_uri), chain(&e)));
            return text(
                StatusCode::BAD_GATEWAY,
                if refused_owner(&e) {
                    "multitenant: the server at this service's address is not the job owner's: not forwarded\n"
                } else if e.is_connect() {
                    "multitenant: the service behind this gate does not answer (not started yet, or stopped)\n"
                } else {
                    "multitenant: the service behind this gate failed to answer\n"
                },
            );
        }
    };

    let upstream_side =
        (response.status() == StatusCode::SWITCHING_PROTOCOLS).then(|| hyper::upgrade::on(&mut response));
    let (mut parts, body) = response.into_parts();
    let protocol = parts.headers.get(UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    strip_gate_set_cookies(&mut parts.headers);
    if let Some(upstream_side) = upstream_side {
        let (Some(client_side), Some(protocol)) = (client_side, protocol) else {
            return text(StatusCode::BAD_GATEWAY, "multitenant: the service switched protocols unasked\n");
        };
        upgrade::splice(client_side, upstream_side, conn);
        parts.headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, protocol);
        return Response::from_parts(parts, Either::Right(Full::default()));
    }
    Response::from_parts(parts, Either::Left(body))
}

/// Whether the upstream connection was refused because another user runs the server there.
fn refused_owner(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if err.is::<crate::upstream::NotOwner>()
            || err
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<crate::upstream::NotOwner>())
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// Takes out of a service's answer every `Set-Cookie` that names a gate's cookie: a service (hostile, or
/// merely unlucky in its naming) must not overwrite or expire the browser's login. A cookie with an
/// empty name (`=multitenant_gate_…=x`) is sent back as its value alone, so its value is what names it.
fn strip_gate_set_cookies(headers: &mut HeaderMap) {
    if !headers.contains_key(SET_COOKIE) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| {
            let pair = v.as_bytes().split(|&b| b == b';').next().unwrap_or_default();
            let name = match pair.iter().position(|&b| b == b'=') {
                Some(i) if !pair[..i].trim_ascii().is_empty() => &pair[..i],
                Some(i) => &pair[i + 1..],
                None => pair,
            };
            !crate::auth::is_gate_cookie(name.trim_ascii())
        })
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for v in kept {
        headers.append(SET_COOKIE, v);
    }
}

/// `POST <path ending in />?multitenant-login` with `multitenant_key=<key>`: sets the gate's cookie
/// and sends the browser to `./`. Never forwarded.
async fn login(state: &State, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        let mut r =
            text(StatusCode::METHOD_NOT_ALLOWED, "multitenant: log in with the form on the card on your dashboard\n");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    if !req.uri().path().ends_with('/') {
        return text(StatusCode::NOT_FOUND, "multitenant: log in at a path that ends in /\n");
    }
    let form = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !form {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "multitenant: the login form must be application/x-www-form-urlencoded\n",
        );
    }
    let secure = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().unwrap_or("").trim().eq_ignore_ascii_case("https"));
    let body =
        tokio::time::timeout(LOGIN_BODY_TIMEOUT, Limited::new(req.into_body(), LOGIN_BODY_LIMIT).collect()).await;
    let body = match body {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return text(StatusCode::PAYLOAD_TOO_LARGE, "multitenant: the login form is over 4 KiB\n"),
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "multitenant: the login form came too slowly\n"),
    };
    if !state.auth.login_form_is_key(&body) {
        state.refused.note(|| format!("refused a login from {}: wrong key", peer.ip()));
        let mut r = html(
            StatusCode::UNAUTHORIZED,
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Wrong key</title></head>\n\
             <body><p>multitenant: that is not this service's key. Open the service again from its card on your dashboard.</p></body></html>\n",
        );
        r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"multitenant\""));
        return r;
    }
    let mut r = Response::new(Either::Right(Full::default()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    let h = r.headers_mut();
    h.insert(LOCATION, HeaderValue::from_static("./"));
    h.insert(SET_COOKIE, state.auth.set_cookie(secure));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Whether the query holds the `multitenant-login` marker (as the whole query or one of its pieces).
fn is_login(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| q.split('&').any(|p| p == LOGIN_QUERY || p.starts_with("multitenant-login=")))
}

fn refusal() -> Response<Body> {
    let mut r = text(StatusCode::UNAUTHORIZED, REFUSED);
    r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"multitenant\""));
    r
}

/// Headers that belong to one connection, not to the message: `Connection`, those it names, and the
/// standard list. Upgrades put theirs back explicitly.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(upgrade::tokens)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// `X-Forwarded-For` gets the client's address appended; `X-Forwarded-Host` and `X-Forwarded-Proto`
/// keep what an earlier proxy (OOD's) set, else say what this connection saw.
fn add_forwarded(headers: &mut HeaderMap, peer: SocketAddr, client_host: Option<HeaderValue>) {
    const XFF: &str = "x-forwarded-for";
    let ip = peer.ip().to_string();
    let earlier: Vec<&str> = headers.get_all(XFF).iter().filter_map(|v| v.to_str().ok()).collect();
    let xff = if earlier.is_empty() { ip } else { format!("{}, {ip}", earlier.join(", ")) };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(XFF, v);
    }
    if !headers.contains_key("x-forwarded-host") {
        if let Some(h) = client_host {
            headers.insert("x-forwarded-host", h);
        }
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    with_type(status, body, "text/plain; charset=utf-8")
}

fn html(status: StatusCode, body: &'static str) -> Response<Body> {
    with_type(status, body, "text/html; charset=utf-8")
}

fn with_type(status: StatusCode, body: &'static str, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(body.as_bytes()))));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A request path for a log line: no query (it may hold secrets), at most 80 characters, escaped.
fn shown(uri: &Uri) -> String {
    let path = uri.path();
    match path.char_indices().nth(80) {
        Some((i, _)) => format!("{:?}…", &path[..i]),
        None => format!("{path:?}"),
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Set-Cookie` values a service's answer keeps after the gate took out its cookies.
    fn kept(values: &[&'static str]) -> Vec<String> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(SET_COOKIE, HeaderValue::from_static(v));
        }
        strip_gate_set_cookies(&mut h);
        h.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect()
    }

    #[test]
    fn a_service_cannot_set_a_gate_cookie() {
        let set =
            ["theme=dark; Path=/", "multitenant_gate_0badcafe=x; Path=/", " multitenant_gate=y", "multitenant_gatex=z"];
        assert_eq!(kept(&set), ["theme=dark; Path=/"]);
    }

    #[test]
    fn a_service_cannot_set_a_gate_cookie_without_a_name() {
        // A cookie with an empty name is sent back as its value alone (RFC 6265bis §5.6, §5.7.3): the
        // browser would send `multitenant_gate_0badcafe=x` to the gates of that host or path.
        let set = [
            "=multitenant_gate_0badcafe=x; Path=/",
            " = multitenant_gate=y",
            "multitenant_gate_0badcafe",
            "=theme=dark",
        ];
        assert_eq!(kept(&set), ["=theme=dark"]);
    }

    #[test]
    fn hop_by_hop_goes() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
    }

    #[test]
    fn login_marker() {
        for (uri, login) in [
            ("/?multitenant-login", true),
            ("/a/?x=1&multitenant-login", true),
            ("/?multitenant-login=1", true),
            ("/?multitenant-loginx", false),
            ("/multitenant-login", false),
        ] {
            assert_eq!(is_login(&uri.parse().unwrap()), login, "{uri}");
        }
    }
}
