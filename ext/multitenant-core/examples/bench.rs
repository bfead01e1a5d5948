//! Sizes of typical share names and the time to seal and open one:
//! `cargo run --release -p multitenant-core --example bench`
//! Results, with the machine and date, go in docs/benchmarks.md.

#[path = "common/mod.rs"]
mod common;
use common::message;
use std::hint::black_box;
use std::time::Instant;

use multitenant_core::{open, seal, Binding, Error, Key, Message, Method};

const JOB: Binding<'static> = Binding { job_id: "1234567", owner: "jsmith42", cluster: "hpc", restarts: 0 };

fn size(m: &Message, key: &Key, group: &str) -> Result<usize, Error> {
    seal(m, key, "mt", group, JOB).map(|n| n.len())
}

/// Pseudo-random (so barely compressible) 8-character names: 5 letters and 3 digits, like `jsmit042`.
fn user(i: usize) -> String {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let letters: String = (0..5).map(|_| char::from(b'a' + next(26) as u8)).collect();
    format!("{letters}{:03}", next(1000))
}

fn max_fit(base: &Message, key: &Key, f: impl Fn(&mut Message, usize)) -> usize {
    (1..)
        .take_while(|&n| {
            let mut m = base.clone();
            f(&mut m, n);
            size(&m, key, "class101").is_ok()
        })
        .last()
        .unwrap_or(0)
}

fn main() {
    let key = Key::generate().unwrap();
    let ollama = message(
        "Ollama_API",
        &[
            ("host", "node017"),
            ("port", "41234"),
            ("ollama_url", "http://node017.cluster.example.edu:41234"),
            ("ollama_model", "gpt-oss:120b"),
        ],
    );
    let mut db = message(
        "PostgreSQL",
        &[
            ("host", "node042"),
            ("port", "5432"),
            ("db_engine", "postgresql"),
            ("db_name", "msba_2026"),
            ("db_user", "msba_student"),
            ("db_password", "q7VtX2mLp9ZcR4sWk8Ne"),
            ("jdbc_url", "jdbc:postgresql://node042.cluster.example.edu:5432/msba_2026"),
        ],
    );
    db.method = Method::Form;
    let minimal = message("A", &[]);
    println!("| share | name size (characters of 1024) |");
    println!("|---|---|");
    for (label, m) in
        [("minimal (no connection values)", &minimal), ("Ollama (4 values)", &ollama), ("PostgreSQL (7 values)", &db)]
    {
        println!("| {label} | {} |", size(m, &key, "class101").unwrap());
    }
    let mut with_expiry = ollama.clone();
    with_expiry.expires_at = Some(1_800_000_000);
    println!("| Ollama + expiry | {} |", size(&with_expiry, &key, "class101").unwrap());
    let allow = |m: &mut Message, n: usize| m.allow = Some((0..n).map(user).collect());
    let uids = |m: &mut Message, n: usize| {
        m.allow = Some((0..n).map(|i| (100_000 + (i as u64 * 2_654_435_761) % 900_000).to_string()).collect())
    };
    println!();
    println!("| what fits | count |");
    println!("|---|---|");
    println!("| allow-listed 8-character user names, Ollama share | {} |", max_fit(&ollama, &key, allow));
    println!("| allow-listed 6-digit uids, Ollama share | {} |", max_fit(&ollama, &key, uids));
    println!("| allow-listed 8-character user names, PostgreSQL share | {} |", max_fit(&db, &key, allow));
    println!(
        "| extra 40-character random values (key `vNN`), Ollama share | {} |",
        max_fit(&ollama, &key, |m, n| {
            for i in 0..n {
                let v: String =
                    (0..40).map(|j| char::from(b'!' + ((i * 131 + j * 71 + i * j * 17) % 90) as u8)).collect();
                m.connection.insert(format!("v{i:02}"), v);
            }
        })
    );

    let name = seal(&ollama, &key, "mt", "class101", JOB).unwrap();
    let keys = [key.clone()];
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        black_box(seal(black_box(&ollama), &key, "mt", "class101", JOB).unwrap());
    }
    let seal_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        black_box(open(black_box(&name), JOB, &keys).unwrap());
    }
    let open_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        black_box(open(black_box(&name), Binding { job_id: "1234568", ..JOB }, &keys).unwrap_err());
    }
    let reject_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!();
    println!("| operation (Ollama share, {n} runs) | µs each |");
    println!("|---|---|");
    println!("| seal | {seal_us:.1} |");
    println!("| open (verify + decrypt + inflate + validate) | {open_us:.1} |");
    println!("| reject a name moved to another job (MAC only) | {reject_us:.1} |");
}
