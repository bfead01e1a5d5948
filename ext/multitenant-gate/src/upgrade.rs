//! HTTP/1.1 upgrades (WebSocket and the like): the request goes upstream with its `Upgrade`, and
//! once the upstream answers `101` both connections are spliced together.

use std::sync::Arc;

use hyper::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::proxy::Conn;

/// The `Upgrade` value of a request that asks for one (`Connection: upgrade` and an `Upgrade` header).
pub(crate) fn requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers.get_all(CONNECTION).iter().any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case("upgrade")));
    asks.then(|| headers.get(UPGRADE).cloned()).flatten()
}

/// The comma-separated tokens of a `Connection` header value.
pub(crate) fn tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value.to_str().unwrap_or("").split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Copies bytes both ways between the client and the upstream once both sides have switched
/// protocols, until either closes. `hold` is kept alive as long as the tunnel, so that it still
/// counts against the connection cap.
pub(crate) fn splice(client: OnUpgrade, upstream: OnUpgrade, hold: Arc<Conn>) {
    tokio::spawn(async move {
        if let Ok((client, upstream)) = tokio::try_join!(client, upstream) {
            let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(upstream)).await;
        }
        drop(hold);
    });
}
