//! Writes the seed corpora, `fuzz/seeds/<target>/`, from `docs/vectors/*.json`:
//! `cargo run --example seeds` in `fuzz/` (rewrites the directory; see docs/fuzzing.md).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aes::cipher::{block_padding::Pkcs7, BlockModeDecrypt, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use flate2::read::MultiGzDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use multitenant_core::cards::{card_id, db_file, output_dir};
use multitenant_core::legacy::legacy_key_iv;
use multitenant_core::manifest::{Entry, Manifest};
use multitenant_core::{open, open_legacy, parse, Binding, Key};
use multitenant_fuzz::{KEY_LINES, LEGACY_BINDING};
use serde_json::Value;

struct Vector {
    file: String,
    name: String,
    keys: Vec<String>,
    job_id: String,
    owner: String,
    cluster: String,
    restarts: u32,
    legacy: bool,
}

impl Vector {
    fn binding(&self) -> Binding<'_> {
        Binding { job_id: &self.job_id, owner: &self.owner, cluster: &self.cluster, restarts: self.restarts }
    }

    /// The vector's message as sealed JSON, when it opens.
    fn json(&self) -> Option<Vec<u8>> {
        let keys: Vec<Key> = self.keys.iter().map(|l| Key::from_line(l).unwrap()).collect();
        let share =
            if self.legacy { open_legacy(&self.name, self.binding()) } else { open(&self.name, self.binding(), &keys) };
        share.ok().map(|s| s.message.to_json())
    }
}

fn vectors(root: &Path) -> Vec<Vector> {
    let mut paths: Vec<PathBuf> = fs::read_dir(root.join("docs/vectors"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let v: Value = serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap();
            Vector {
                file: p.file_stem().unwrap().to_string_lossy().into_owned(),
                name: v["name"].as_str().unwrap().to_string(),
                keys: v["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect(),
                job_id: v["job_id"].as_str().unwrap().to_string(),
                owner: v["owner"].as_str().unwrap().to_string(),
                cluster: v["cluster"].as_str().unwrap_or_default().to_string(),
                restarts: v["restarts"].as_u64().map_or(0, |n| u32::try_from(n).unwrap()),
                legacy: v["legacy"].as_bool().unwrap(),
            }
        })
        .collect()
}

struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn new(root: &Path, target: &str) -> Seeds {
        let dir = root.join("fuzz/seeds").join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Seeds { dir, count: 0 }
    }

    fn put(&mut self, name: &str, bytes: &[u8]) {
        fs::write(self.dir.join(name), bytes).unwrap();
        self.count += 1;
    }
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut z = DeflateEncoder::new(Vec::new(), Compression::best());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

/// seal_open's input: mode, key, owner, cluster, prefix, group, job id (u64 LE), restarts (u32 LE), content.
fn seal_input(mode: u8, key: u8, job: u64, restarts: u32, content: &[u8]) -> Vec<u8> {
    let mut out = vec![mode, key, 0, 0, 0, 0];
    out.extend(job.to_le_bytes());
    out.extend(restarts.to_le_bytes());
    out.extend(content);
    out
}

/// squeue_records' input: options, the two tokens' random bytes, the three template sections.
fn records_input(options: u8, squeue: &str, sacct: &str, named: &str) -> Vec<u8> {
    let mut out = vec![options];
    out.extend((1u8..=24).map(|b| b.wrapping_mul(37)));
    out.extend(format!("{squeue}\u{1D}{sacct}\u{1D}{named}").bytes());
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let vectors = vectors(&root);
    let messages: Vec<(String, Vec<u8>)> =
        vectors.iter().filter_map(|v| v.json().map(|j| (v.file.clone(), j))).collect();
    // Refused content, as it would be sealed (the vectors carry it only encrypted).
    let hostile: &[(&str, &str)] = &[
        ("hostile-app", r#"{"i":"s1","a":"Oll\u202eama","m":"card","d":"sys/d"}"#),
        ("blank-app", r#"{"i":"s1","a":"\u0301\u0302 ","m":"card","d":"sys/d"}"#),
        ("hostile-session-id", r#"{"i":"../../etc","a":"A","m":"card","d":"sys/d"}"#),
        ("hostile-token", r#"{"i":"s1","a":"A","m":"card","d":"sys/../../x"}"#),
        ("unknown-field", r#"{"i":"s1","a":"A","m":"card","d":"sys/d","z":1}"#),
        (
            "reserved-key",
            r#"{"i":"s1","a":"A","m":"form","d":"usr/bob/app","c":{"instance_eval":"x"},"u":["bob"],"x":253402300800}"#,
        ),
    ];

    // open_v1: every vector's name.
    let mut s = Seeds::new(&root, "open_v1");
    for v in &vectors {
        s.put(&v.file, v.name.as_bytes());
    }
    let open_v1 = s.count;

    // seal_open: each message that opens, as JSON and deflated; hostile content; a bomb, a bad flag.
    let mut s = Seeds::new(&root, "seal_open");
    for (file, json) in &messages {
        s.put(&format!("{file}-json"), &seal_input(0x81, 2, 4242, 0, json));
        s.put(&format!("{file}-deflate"), &seal_input(2, 2, 4242, 3, json));
    }
    for (file, json) in hostile {
        s.put(file, &seal_input(1, 0, 4242, 0, json.as_bytes()));
    }
    let bomb: Vec<u8> = [&[1u8][..], &deflate(&vec![b' '; 20_000])].concat();
    s.put("deflate-bomb", &seal_input(0, 2, 4242, 0, &bomb));
    s.put("bad-flag", &seal_input(0, 2, 4242, 0, &[2, b'{', b'}']));
    let seal_open = s.count;

    // legacy: the legacy names; the text and the gzip stream inside legacy-ollama.
    let mut s = Seeds::new(&root, "legacy");
    for v in vectors.iter().filter(|v| v.legacy) {
        s.put(&v.file, &[&[0u8][..], v.name.as_bytes()].concat());
        if v.json().is_some() {
            let payload = parse(&v.name).unwrap().payload;
            let (key, iv) = legacy_key_iv(LEGACY_BINDING);
            let gz = cbc::Decryptor::<aes::Aes256>::new(&key.into(), &iv.into())
                .decrypt_padded_vec::<Pkcs7>(&STANDARD.decode(payload).unwrap())
                .unwrap();
            let mut text = Vec::new();
            MultiGzDecoder::new(&gz[..]).read_to_end(&mut text).unwrap();
            s.put(&format!("{}-text", v.file), &[&[1u8][..], &text].concat());
            s.put(&format!("{}-gzip", v.file), &[&[2u8][..], &gz].concat());
        }
    }
    let legacy = s.count;

    // squeue_records: the vectors' names on running jobs, as each query prints them.
    let mut s = Seeds::new(&root, "squeue_records");
    let (sep, end) = ("\u{1F}", "\u{1E}");
    let mut short: Vec<&Vector> = vectors.iter().collect();
    short.sort_by_key(|v| v.name.len());
    short.truncate(4);
    let squeue: String = short
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{}{sep}{}{sep}mtshare{sep}alpha{sep}{}{sep}node[01-02]{sep}{}{end}",
                4242 + i,
                v.owner,
                i % 2,
                v.name
            )
        })
        .collect();
    let sacct: String = (0..4).map(|i| format!("{}{sep}alice{sep}alpha{sep}mtshare\n", 4242 + i)).collect();
    let named: String = short
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!("{}{sep}{}{sep}0{sep}node017{sep}{}{end}", 4242 + i, if i == 3 { "1001" } else { "alice" }, v.name)
        })
        .collect();
    s.put("vectors", &records_input(0x00, &squeue, &sacct, &named));
    s.put("vectors-on-alpha", &records_input(0x10, &squeue, &sacct, &named));
    let hostile_squeue = format!(
        "CLUSTER: alpha\n4242{sep}alice{sep}mtshare{sep}alpha{sep}0{sep}node1{sep}mt|g|2.x\n4243|bob|mtshare\n{end}\
         4244{sep}mallory{sep}mtshare{sep}alpha{sep}0{sep}node1{sep}a\u{1B}b\u{1C}c\u{1A}\u{19}d\u{18}{end}\
         4245{sep}bob{sep}other{sep}alpha{sep}1{sep}node1{sep}x{end}4242{sep}bob{sep}mtshare{sep}alpha{sep}0{sep}n{sep}dup{end}partial{sep}"
    );
    let hostile_sacct = format!("4242{sep}alice{sep}alpha{sep}mtshare\r\n4243{sep}bob{sep}beta{sep}mtshare|x\n4244{sep}1001{sep}alpha{sep}mtshare");
    let hostile_named = format!(
        "4242{sep}alice{sep}0{sep}n{sep}a\nb|c{end}4244{sep}{sep}0{sep}n{sep}x{end}4242{sep}99{sep}0{sep}n{sep}y{end}"
    );
    s.put("hostile", &records_input(0x00, &hostile_squeue, &hostile_sacct, &hostile_named));
    let squeue_records = s.count;

    // message: each message that opens, the hostile content, and field texts for the check_* rules.
    let mut s = Seeds::new(&root, "message");
    for (file, json) in &messages {
        s.put(file, json);
    }
    for (file, json) in hostile {
        s.put(file, json.as_bytes());
    }
    for (file, text) in [
        ("session-id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        ("app", "Ollama_API"),
        ("app-unicode", "Jupyter — Ünïcode ✓"),
        ("delivery-sys", "sys/multitenant-delivery_default"),
        ("delivery-usr", "usr/alice/my.app"),
        ("connection-key", "ollama_url"),
        ("user", "jsmith42@example.edu"),
        ("method", "card"),
    ] {
        s.put(file, text.as_bytes());
    }
    let message = s.count;

    // key_file: each key line, a key file as keygen writes it after a rotation, a damaged line.
    let mut s = Seeds::new(&root, "key_file");
    for (i, line) in KEY_LINES.iter().enumerate() {
        s.put(&format!("key-{i}"), line.as_bytes());
    }
    s.put("rotated", format!("# class101\n{}\n\n{}\n", KEY_LINES[3], KEY_LINES[2]).as_bytes());
    s.put("damaged-id", KEY_LINES[0].replacen("f1a9", "f1a8", 1).as_bytes());
    let key_file = s.count;

    // manifest: as `write` writes it, for the vectors' jobs; an empty one.
    let mut s = Seeds::new(&root, "manifest");
    let mut m = Manifest::default();
    for (i, v) in vectors.iter().filter(|v| v.json().is_some()).take(3).enumerate() {
        let cluster = if v.cluster.is_empty() { "alpha" } else { &v.cluster };
        let id = card_id(cluster, &v.job_id, &v.owner);
        let entry = Entry {
            job_id: v.job_id.clone(),
            group: "class101".into(),
            cluster: cluster.into(),
            owner: v.owner.clone(),
            db: db_file(&id),
            output: output_dir(i == 1, "alpha", "sys/multitenant-delivery_default", &id),
            digest: "0123456789abcdef01234567".into(),
            created_at: 1_764_460_800 + i as u64,
            dismissed: i == 2,
            pending: i == 1,
            stamps: None,
        };
        m.cards.insert(id, entry);
    }
    s.put("cards", &serde_json::to_vec_pretty(&m).unwrap());
    // The stamps of a card's two files (device, inode, size, mtime s/ns, ctime s/ns), as `write` records them.
    let mut stamped = serde_json::to_value(&m).unwrap();
    for card in stamped["cards"].as_object_mut().unwrap().values_mut() {
        card["stamps"] = serde_json::json!([
            [2049, 131_074, 412, 1_764_460_800, 5, 1_764_460_800, 7],
            [2049, 131_075, 0, 1, 2, 3, 4]
        ]);
    }
    s.put("stamped", &serde_json::to_vec_pretty(&stamped).unwrap());
    s.put("empty", &serde_json::to_vec_pretty(&Manifest { version: 1, cards: BTreeMap::new() }).unwrap());
    let manifest = s.count;

    println!(
        "seeds: open_v1 {open_v1}, seal_open {seal_open}, legacy {legacy}, squeue_records {squeue_records}, message {message}, key_file {key_file}, manifest {manifest}"
    );
}
