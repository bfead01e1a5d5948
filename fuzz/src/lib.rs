//! What the fuzz targets share: the keys of `docs/vectors/` and the bindings the vectors open with.

use std::sync::OnceLock;

use multitenant_core::{Binding, Key};

/// Every distinct key of `docs/vectors/*.json`.
pub const KEY_LINES: &[&str] = &[
    "mtk1:f1a90079:KSJgD7d-4g0IzVpCjHsGcDIRkoiNjzdRLHTj7R0Pyr4",
    "mtk1:0ab9d609:c5NPd2Lk-hVUpNKlurje_dL7oFiG9gC0zRIjZT2mXu4",
    "mtk1:da9dcc76:M_DX_W8AzQPPKsoJGj-kVyZH3fNTE3LEcSY8Mxw1MyM",
    "mtk1:996b026c:UaBdRcTnW8l7zaDWduN3dHA7c_EWjzVcD71INaGMIsU",
    "mtk1:47157646:AfV4EIcIotVcYSWYhCSTOEwk19pFL4wldhajGbuoUlw",
    "mtk1:027bce78:dTTMaSHr4O13jWJJ1_6ExWGXY3z-p290tpraYV1e7Es",
];

/// The fixed bindings raw names are opened with: job 4242 of alice on alpha, first run (most
/// vectors), and the fourth run on cluster-2.example (`v2-database-allow-expiry`).
pub const BINDINGS: &[Binding<'static>] = &[
    Binding { job_id: "4242", owner: "alice", cluster: "alpha", restarts: 0 },
    Binding { job_id: "4242", owner: "alice", cluster: "cluster-2.example", restarts: 3 },
];

/// The legacy vectors' binding (legacy names bind no cluster and no run).
pub const LEGACY_BINDING: Binding<'static> = Binding { job_id: "4242", owner: "alice", cluster: "", restarts: 0 };

/// The prefix and group the legacy target's generated names carry (those of `legacy-ollama`).
pub const LEGACY_PREFIX_GROUP: &str = "sys/dashboard|class101|";

/// [`KEY_LINES`], parsed once.
pub fn keys() -> &'static [Key] {
    static KEYS: OnceLock<Vec<Key>> = OnceLock::new();
    KEYS.get_or_init(|| KEY_LINES.iter().map(|l| Key::from_line(l).expect("a vector key")).collect())
}

thread_local! {
    /// One raw-deflate compressor, reset for each input: a fresh one is hundreds of KiB to allocate
    /// and clear, which would dominate the targets' time.
    static DEFLATE: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::default(), false));
}

/// `bytes` as one raw DEFLATE stream (RFC 1951).
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    DEFLATE.with_borrow_mut(|z| {
        z.reset();
        let mut out = Vec::with_capacity(bytes.len() + 64);
        loop {
            let done = z.total_in() as usize;
            let status = z.compress_vec(&bytes[done..], &mut out, flate2::FlushCompress::Finish).expect("deflate");
            if status == flate2::Status::StreamEnd {
                return out;
            }
            out.reserve(out.capacity().max(64));
        }
    })
}

/// `bytes` as a gzip member (RFC 1952), as `gzip` writes it.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    out.extend(deflate(bytes));
    out.extend(crc.sum().to_le_bytes());
    out.extend((bytes.len() as u32).to_le_bytes());
    out
}
