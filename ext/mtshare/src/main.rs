//! `mtshare`: runs inside a Slurm job, as its owner, and publishes the job's connection details to a
//! group by sealing them into the job's own name. All logic lives in `multitenant-core`.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{ArgGroup, Args, Parser, Subcommand};
use multitenant_core::envelope::{check_job_id, check_prefix, parse, Format};
use multitenant_core::message::MAX_EXPIRY;
use multitenant_core::{
    looks_secret, open, open_legacy, seal, Binding, Error, KeyDir, KeyTarget, Message, Method, Scheduler, NAME_LIMIT,
};
use nix::unistd::{Uid, User};

mod rename;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  2  usage error (unknown flag, missing argument)
  3  invalid input: a value breaks a rule, or the sealed name would exceed 1024 characters
  4  key problem: no key for the group or for the name's key id; unsafe (owner, group, mode) or
     unreadable key file or key directory
  5  the scheduler command (scontrol) failed or timed out
  6  the name does not open: malformed, unsupported version, or its seal does not verify
  1  anything else";

#[derive(Parser)]
#[command(name = "mtshare", version, about = "Share a Slurm job's connection details with a group, sealed in its job name", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Seal connection values for a group and rename this job (run inside the job, as its owner)
    #[command(after_help = EXIT_CODES)]
    Publish(Box<Publish>),
    /// Stop sharing: give this job back its original name
    #[command(after_help = EXIT_CODES)]
    Unshare(Unshare),
    /// Show a job name's fields and size; decode it when the group's key is readable here
    #[command(after_help = EXIT_CODES)]
    Inspect(Inspect),
    /// Create a group's key file, or the site-wide key (admin, as root)
    #[command(after_help = EXIT_CODES)]
    Keygen(Keygen),
    /// Run the service gate in front of this job's HTTP service: forward only requests that carry the
    /// share's key (Bearer token, Basic password, or the cookie its login form sets); until SIGTERM
    #[command(after_help = EXIT_CODES)]
    Gate(GateArgs),
}

#[derive(Args)]
struct KeyOpts {
    /// Directory holding <group>.key files and @site.key
    #[arg(long, env = "MULTITENANT_KEY_DIR", default_value = "/etc/multitenant/keys")]
    key_dir: PathBuf,
    /// User that must own the key directory and key files
    #[arg(long, env = "MULTITENANT_KEY_OWNER", default_value = "root")]
    key_owner: String,
}

impl KeyOpts {
    fn dir(&self) -> Result<KeyDir, Error> {
        let uid = match User::from_name(&self.key_owner) {
            Ok(Some(u)) => u.uid.as_raw(),
            _ => return Err(Error::Invalid(format!("--key-owner {:?} is not a user on this host", self.key_owner))),
        };
        Ok(KeyDir::new(&self.key_dir).with_owner(uid))
    }
}

#[derive(Args)]
struct JobOpts {
    /// Job id (inside a job: from SLURM_JOB_ID)
    #[arg(long, env = "SLURM_JOB_ID")]
    job_id: String,
    /// Job owner (inside a job: from SLURM_JOB_USER)
    #[arg(long, env = "SLURM_JOB_USER")]
    owner: String,
    /// Slurm cluster name the job runs on (inside a job: from SLURM_CLUSTER_NAME); the share opens
    /// only for this cluster
    #[arg(long, env = "SLURM_CLUSTER_NAME")]
    cluster: Option<String>,
    /// How many times Slurm restarted (requeued) the job (inside a job: from SLURM_RESTART_COUNT,
    /// absent meaning 0); the share opens only for this run
    #[arg(long, env = "SLURM_RESTART_COUNT", default_value_t = 0)]
    restarts: u32,
}

#[derive(Args)]
struct Publish {
    /// POSIX group to share with; its members find the share (narrow it with --allow)
    #[arg(long)]
    group: String,
    /// App or preset name receivers see, e.g. Ollama_API
    #[arg(long)]
    app: String,
    /// card: also deliver a card to each receiver's dashboard; form: only offer it in other apps' forms
    #[arg(long, default_value = "card", value_parser = ["card", "form"])]
    method: String,
    /// OOD app token of the delivery app that renders the card
    #[arg(long, default_value = "sys/multitenant-delivery_default")]
    delivery: String,
    /// Owner's OOD session id (default: the current directory's name when it is a UUID, as in OOD's
    /// output dir, else a new UUID)
    #[arg(long)]
    session_id: Option<String>,
    /// A connection value, KEY=VALUE (repeatable); the value may hold any characters. Not for
    /// secrets: every user on the node can read a command line (use --env or --set-file)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// A connection value read whole from a file, KEY=PATH (repeatable; at most 64 KiB; one final
    /// newline dropped): for multi-line text such as Markdown
    #[arg(long = "set-file", value_name = "KEY=PATH")]
    set_file: Vec<String>,
    /// A connection value from an environment variable: NAME (key = name in lower case) or key=NAME.
    /// The way to pass a secret (a password, an API key): no command line shows it
    #[arg(long = "env", value_name = "[KEY=]NAME")]
    env: Vec<String>,
    /// Connection values from a file of KEY=VALUE lines (# comments and blank lines skipped)
    #[arg(long, value_name = "PATH")]
    from_file: Vec<PathBuf>,
    /// Show the share only to these users (names or uids, comma-separated, repeatable) among the
    /// group's members. Not a lock: every member of the group holds the group's key and can open the
    /// share, secrets included; the service's own credential (mtshare gate) is what each use needs
    #[arg(long, value_delimiter = ',')]
    allow: Vec<String>,
    /// Stop sharing after this long, e.g. 90m, 8h, 2days
    #[arg(long, conflicts_with = "expires_at")]
    expires_in: Option<humantime::Duration>,
    /// Stop sharing at this time, e.g. 2026-12-01T18:00:00Z
    #[arg(long)]
    expires_at: Option<humantime::Timestamp>,
    /// Seal with the site-wide key when the group has no key of its own (every user can read that key,
    /// so the share is only hidden from casual view)
    #[arg(long, env = "MULTITENANT_ALLOW_SITE_KEY")]
    allow_site_key: bool,
    /// First field of the job name, shown by squeue
    #[arg(long, default_value = multitenant_core::DEFAULT_PREFIX)]
    prefix: String,
    /// Print the sealed name instead of renaming the job
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    job: JobOpts,
    #[command(flatten)]
    keys: KeyOpts,
}

#[derive(Args)]
struct Unshare {
    /// Name to restore (default: the name the job was submitted with, SLURM_JOB_NAME; refused when
    /// that is itself a share, as after a requeue of a shared job)
    #[arg(long, env = "SLURM_JOB_NAME")]
    name: String,
    /// Job id (inside a job: from SLURM_JOB_ID)
    #[arg(long, env = "SLURM_JOB_ID")]
    job_id: String,
    /// Print what would be done instead of doing it
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct Inspect {
    /// The full job name, as squeue -O Name: prints it
    name: String,
    /// Job id the name belongs to (needed to decode)
    #[arg(long)]
    job_id: Option<String>,
    /// Owner of that job (needed to decode)
    #[arg(long, requires = "job_id")]
    owner: Option<String>,
    /// Slurm cluster name of that job, as squeue -O Cluster prints it (needed to decode a version 2 name)
    #[arg(long, requires = "job_id")]
    cluster: Option<String>,
    /// Slurm restart count of that job, as squeue -O RestartCnt prints it (0 for the first run)
    #[arg(long, requires = "job_id", default_value_t = 0)]
    restarts: u32,
    /// Also decode the first implementation's insecure format
    #[arg(long)]
    legacy: bool,
    #[command(flatten)]
    keys: KeyOpts,
}

#[derive(Args)]
#[command(group(ArgGroup::new("target").required(true).args(["group", "site"])))]
struct Keygen {
    /// Group whose key to create: the file is root:<group>, mode 0440
    #[arg(long)]
    group: Option<String>,
    /// Create the site-wide key instead: readable by every user, so it only obfuscates
    #[arg(long)]
    site: bool,
    /// Add a new first key to an existing file, keeping the older keys for running shares
    #[arg(long)]
    rotate: bool,
    /// Keep only the newest key of an existing file and drop the older ones. Use it after --rotate (to
    /// cut off a former member who kept a copy of the key), once every share sealed with the old key
    /// has ended: a running share sealed with a dropped key stops opening
    #[arg(long, conflicts_with = "rotate")]
    drop_old: bool,
    #[command(flatten)]
    keys: KeyOpts,
}

/// The key is never an argument: every user on a node can read every command line.
#[derive(Args)]
struct GateArgs {
    /// Address to listen on: the published port, e.g. 0.0.0.0:8080
    #[arg(long, value_name = "ADDR:PORT")]
    listen: std::net::SocketAddr,
    /// The service: HOST:PORT on loopback (e.g. 127.0.0.1:11434) or unix:/PATH of a socket; on this
    /// node it must be run by the gate's own user (another host's server is forwarded to unchecked)
    #[arg(long, value_name = "HOST:PORT|unix:/PATH", value_parser = parse_upstream)]
    upstream: multitenant_gate::Upstream,
    /// Environment variable that holds the key (at least 32 characters of A-Z a-z 0-9 _ -); once read it
    /// is removed from the gate's environment, so nothing the gate starts inherits it
    /// (/proc/<pid>/environ still shows the starting environment, to the job's user and root only)
    #[arg(long, value_name = "NAME", default_value = "MULTITENANT_GATE_KEY")]
    key_env: String,
    /// Read the key from this file instead: it must be yours, with no access for group or other (0600)
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Send the client's Host header to the service instead of the service's own HOST:PORT
    #[arg(long)]
    preserve_host: bool,
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader goes away (`mtshare inspect … | head`),
    // instead of panicking on a closed stdout.
    // SAFETY: set before any thread starts; SIG_DFL is always a valid disposition.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtshare: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &Error) -> u8 {
    match e.kind() {
        "invalid" | "too_large" => 3,
        "key_file" | "unknown_key" => 4,
        "command" => 5,
        "malformed" | "unsupported_version" | "bad_seal" | "legacy_disabled" => 6,
        _ => 1,
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Cmd::Publish(p) => publish(*p),
        Cmd::Unshare(u) => unshare(u),
        Cmd::Inspect(i) => inspect(i),
        Cmd::Keygen(k) => keygen(k),
        Cmd::Gate(g) => gate(g),
    }
}

fn split_pair<'a>(s: &'a str, flag: &str) -> Result<(&'a str, &'a str), Error> {
    s.split_once('=').ok_or_else(|| Error::Invalid(format!("{flag} {s:?} must look like KEY=VALUE")))
}

/// The connection values, and the `--from-file` files that held a secret-looking key (each file is read
/// once: a named pipe has nothing left for a second reader, and would wait for another writer).
fn connection_values(p: &Publish) -> Result<(BTreeMap<String, String>, Vec<PathBuf>), Error> {
    let mut values = BTreeMap::new();
    let mut secret_files = Vec::new();
    for path in &p.from_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("--from-file {}: {e}", path.display())))?;
        let mut secret = false;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (k, v) = split_pair(line, &format!("{} line {}:", path.display(), n + 1))?;
            secret |= looks_secret(k.trim());
            values.insert(k.trim().to_string(), v.to_string());
        }
        if secret {
            secret_files.push(path.clone());
        }
    }
    for spec in &p.env {
        let (key, var) = match spec.split_once('=') {
            Some((k, var)) => (k.to_string(), var),
            None => (spec.to_lowercase(), spec.as_str()),
        };
        let value = std::env::var(var).map_err(|_| Error::Invalid(format!("--env {spec}: ${var} is not set")))?;
        values.insert(key, value);
    }
    for pair in &p.set_file {
        let (k, path) = split_pair(pair, "--set-file")?;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| std::io::Read::take(f, 64 * 1024).read_to_string(&mut text))
            .map_err(|e| Error::Invalid(format!("--set-file {k}={path}: {e}")))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        values.insert(k.to_string(), text.to_string());
    }
    for pair in &p.set {
        let (k, v) = split_pair(pair, "--set")?;
        values.insert(k.to_string(), v.to_string());
    }
    Ok((values, secret_files))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn default_session_id() -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| uuid::Uuid::try_parse(n).is_ok())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Warnings for secrets handled unsafely: a secret-looking `--set` value (already on this command
/// line, which `ps` shows every user on the node) and an allow-list beside a secret (it only chooses
/// who is shown the share).
fn secret_warnings(p: &Publish, msg: &Message, secret_files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for pair in &p.set {
        let key = pair.split_once('=').map_or(pair.as_str(), |(k, _)| k);
        if looks_secret(key) {
            out.push(format!(
                "--set {key}=… put a secret on this command line, which every user on this node can read (ps, /proc/*/cmdline): \
                 pass it as --env {key}=VARIABLE (from the environment) or --set-file {key}=PATH (a 0600 file) instead"
            ));
        }
    }
    // A file that holds a secret must be the owner's alone.
    let open_to_others = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o777).filter(|mode| mode & 0o077 != 0)
    };
    let files = p.set_file.iter().filter_map(|pair| pair.split_once('=')).filter(|(k, _)| looks_secret(k));
    let files = files.map(|(k, path)| (format!("--set-file {k}={path}"), PathBuf::from(path)));
    let from = secret_files.iter().map(|path| (format!("--from-file {}", path.display()), path.clone()));
    for (flag, path) in files.chain(from) {
        if let Some(mode) = open_to_others(&path) {
            out.push(format!(
                "{flag}: the file holds a secret and its mode {mode:04o} lets others on this host read it: chmod 600 {}",
                path.display()
            ));
        }
    }
    if let Some(allow) = &msg.allow {
        let secrets: Vec<&str> = msg.connection.keys().map(String::as_str).filter(|k| looks_secret(k)).collect();
        if !secrets.is_empty() {
            out.push(format!(
                "--allow {} only chooses who is shown this share: every member of group {} holds the group's key and can \
                 open it, and so read {}",
                allow.join(","),
                p.group,
                secrets.join(", ")
            ));
        }
    }
    out
}

/// The owner named by Slurm must be the user running this: a name sealed for someone else never opens.
fn check_owner(owner: &str) -> Result<(), Error> {
    let me = User::from_uid(Uid::effective()).ok().flatten().map(|u| u.name);
    match me {
        Some(me) if me == owner => Ok(()),
        Some(me) => Err(Error::Invalid(format!(
            "the job's owner is {owner} (SLURM_JOB_USER) but mtshare runs as {me}: run it inside the job, as its owner"
        ))),
        None => Err(Error::Invalid("cannot tell which user runs mtshare".into())),
    }
}

fn publish(p: Publish) -> Result<(), Error> {
    check_prefix(&p.prefix)?;
    let cluster = p.job.cluster.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
        Error::Invalid(
            "SLURM_CLUSTER_NAME is not set: run mtshare inside the Slurm job, or give --cluster (and --restarts) explicitly"
                .into(),
        )
    })?;
    let binding = Binding { job_id: &p.job.job_id, owner: &p.job.owner, cluster, restarts: p.job.restarts };
    binding.validate_run()?;
    check_owner(&p.job.owner)?;
    let expires_at = match (p.expires_in, p.expires_at) {
        (Some(d), _) => match now().checked_add(Duration::from(d).as_secs()).filter(|&t| t <= MAX_EXPIRY) {
            Some(t) if Duration::from(d).as_secs() > 0 => Some(t),
            Some(_) => return Err(Error::Invalid("--expires-in must be longer than 0 seconds".into())),
            None => return Err(Error::Invalid("--expires-in reaches past the year 9999".into())),
        },
        (None, Some(t)) => match SystemTime::from(t).duration_since(UNIX_EPOCH).map(|d| d.as_secs()) {
            Ok(t) if t > now() => Some(t),
            _ => return Err(Error::Invalid("--expires-at is in the past".into())),
        },
        (None, None) => None,
    };
    let (connection, secret_files) = connection_values(&p)?;
    let msg = Message {
        session_id: p.session_id.clone().unwrap_or_else(default_session_id),
        app: p.app.clone(),
        method: Method::parse(&p.method)?,
        delivery: p.delivery.clone(),
        connection,
        allow: (!p.allow.is_empty()).then(|| p.allow.clone()),
        expires_at,
    };
    msg.validate()?;
    for w in secret_warnings(&p, &msg, &secret_files) {
        eprintln!("mtshare: warning: {w}");
    }
    let (key, key_path) = p.keys.dir()?.sealing_key(&p.group, p.allow_site_key)?;
    if key_path.ends_with(multitenant_core::keys::SITE_KEY_FILE) {
        eprintln!("mtshare: warning: sealed with the site-wide key: every user on the cluster can read this share");
    }
    let name = seal(&msg, &key, &p.prefix, &p.group, binding)?;
    let summary = format!(
        "{} share {:?} for group {} ({} connection values{}), key {} from {}, for run {} on cluster {}: name is {} of {NAME_LIMIT} characters",
        msg.method.as_str(),
        msg.app,
        p.group,
        msg.connection.len(),
        msg.allow.as_ref().map_or(String::new(), |a| format!(", {} allowed users", a.len())),
        key.id_hex(),
        key_path.display(),
        binding.restarts,
        binding.cluster,
        name.len(),
    );
    if p.dry_run {
        println!("{name}");
        eprintln!("mtshare: dry run, job {} not renamed: {summary}", p.job.job_id);
    } else {
        rename_job(&p.job.job_id, &name)?;
        println!("mtshare: published job {}: {summary}", p.job.job_id);
    }
    Ok(())
}

/// `scontrol update JobId=<id> JobName=<name>`, sent again while slurmctld refuses it because it is still
/// recording the job in accounting ([`rename::rename_job`]); warnings go to stderr.
fn rename_job(job_id: &str, name: &str) -> Result<(), Error> {
    rename::rename_job(&Scheduler::default(), job_id, name, rename::Backoff::default(), |w| {
        eprintln!("mtshare: warning: {w}")
    })
}

fn unshare(u: Unshare) -> Result<(), Error> {
    check_job_id(&u.job_id)?;
    if u.name.len() > NAME_LIMIT {
        return Err(Error::Invalid(format!("--name is {} characters, over {NAME_LIMIT}", u.name.len())));
    }
    // A requeued job starts with the name its previous run sealed, and SLURM_JOB_NAME may say so:
    // putting that back would offer the previous run's share again.
    if parse(&u.name).is_ok() {
        return Err(Error::Invalid(
            "the name to restore is itself a share (SLURM_JOB_NAME after a requeue of a shared job): give --name with a plain name"
                .into(),
        ));
    }
    if u.dry_run {
        println!("scontrol update JobId={} JobName={}", u.job_id, u.name);
        return Ok(());
    }
    rename_job(&u.job_id, &u.name)?;
    println!("mtshare: job {} is no longer shared; its name is {:?} again", u.job_id, u.name);
    Ok(())
}

fn inspect(i: Inspect) -> Result<(), Error> {
    let parsed = parse(&i.name)?;
    println!("prefix   {}", parsed.prefix);
    println!("group    {}", parsed.group);
    let key = parsed.format.key_id_hex().unwrap_or_default();
    let binds_run = matches!(parsed.format, Format::V1 { version, .. } if version.binds_run());
    match &parsed.format {
        Format::V1 { .. } if binds_run => {
            println!("format   {} (key {key}; bound to job, owner, cluster and run)", parsed.format.version_str())
        }
        Format::V1 { .. } => println!(
            "format   {} (key {key}; bound to job and owner only: cannot tell runs or clusters apart)",
            parsed.format.version_str()
        ),
        Format::Legacy => println!("format   legacy (INSECURE: anyone who sees the job can decrypt it; no integrity)"),
    }
    println!("size     {} of {NAME_LIMIT} characters ({} free)", i.name.len(), NAME_LIMIT.saturating_sub(i.name.len()));
    let (Some(job_id), Some(owner)) = (i.job_id.as_deref(), i.owner.as_deref()) else {
        let need = if binds_run {
            "--job-id, --owner and --cluster (and --restarts after a requeue)"
        } else {
            "--job-id and --owner"
        };
        println!("content  not decoded: give {need} of the job this name belongs to");
        return Ok(());
    };
    let cluster = i.cluster.as_deref().unwrap_or_default();
    if binds_run && cluster.is_empty() {
        println!(
            "content  not decoded: give --cluster (and --restarts after a requeue) too: this name is bound to its cluster and run"
        );
        return Ok(());
    }
    let binding = Binding { job_id, owner, cluster, restarts: i.restarts };
    let share = match parsed.format {
        Format::Legacy if i.legacy => open_legacy(&i.name, binding)?,
        Format::Legacy => return Err(Error::LegacyDisabled),
        Format::V1 { .. } => open(&i.name, binding, &i.keys.dir()?.opening_keys(parsed.group)?)?,
    };
    if binds_run {
        println!("bound    job {job_id} of {owner}, run {} (restart count) on cluster {cluster}", i.restarts);
    } else {
        println!("bound    job {job_id} of {owner} (any run, any cluster: this format does not bind them)");
    }
    let m = &share.message;
    println!("session  {}", m.session_id);
    println!("app      {}", m.app);
    println!("method   {}", m.method.as_str());
    println!("delivery {}", m.delivery);
    println!("allow    {}", m.allow.as_ref().map_or("(whole group)".to_string(), |a| a.join(",")));
    match m.expires_at {
        // validate() caps expiries at 9999-12-31, so this is a date humantime can show.
        Some(t) => println!("expires  {}", humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t))),
        None => println!("expires  never"),
    }
    for (k, v) in &m.connection {
        println!("conn     {k} = {v:?}");
    }
    Ok(())
}

fn keygen(k: Keygen) -> Result<(), Error> {
    let target = match &k.group {
        Some(g) => KeyTarget::Group(g),
        None => KeyTarget::Site,
    };
    if k.drop_old {
        let (file, dropped) = k.keys.dir()?.drop_old(target)?;
        println!(
            "mtshare: kept key {} in {}; dropped {dropped} older key(s): shares sealed with them no longer open",
            file.keys[0].id_hex(),
            file.path.display()
        );
        return Ok(());
    }
    let file = k.keys.dir()?.generate(target, k.rotate)?;
    let (who, mode) = match target {
        KeyTarget::Group(g) => (format!("{}:{g}", k.keys.key_owner), "0440"),
        KeyTarget::Site => {
            (k.keys.key_owner.clone(), "0444, readable by every user: it hides shares from casual view only")
        }
    };
    println!(
        "mtshare: wrote {} ({who}, {mode}): new key {}{}",
        file.path.display(),
        file.keys[0].id_hex(),
        if file.keys.len() > 1 {
            format!(" seals from now on; {} older key(s) still open running shares", file.keys.len() - 1)
        } else {
            String::new()
        }
    );
    Ok(())
}

fn parse_upstream(s: &str) -> Result<multitenant_gate::Upstream, String> {
    s.parse().map_err(|e: multitenant_gate::GateError| e.to_string())
}

fn gate(g: GateArgs) -> Result<(), Error> {
    // Never echo what was given as a name when it may be a key put there by mistake.
    let is_name = g.key_env.len() < multitenant_gate::Key::MIN_LEN
        && g.key_env.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && g.key_env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if g.key_file.is_none() && !is_name {
        return Err(Error::Invalid(
            "--key-env takes the name of an environment variable (under 32 characters), not the key: a key on a command line is visible to every user on the node, so make a new one if it was".into(),
        ));
    }
    let key = match &g.key_file {
        Some(path) => multitenant_gate::Key::from_file(path),
        None => {
            let key = multitenant_gate::Key::from_env(&g.key_env);
            // Only this process and root could read it there, but nothing here needs it any more.
            // Safe: no other thread runs yet (the gate starts its runtime below).
            std::env::remove_var(&g.key_env);
            key
        }
    }
    .map_err(gate_error)?;
    // main() restored SIGPIPE's default for pipelines; a client that goes away mid-response must not end
    // the gate. SAFETY: no other thread runs yet; SIG_IGN is always a valid disposition.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) };
    let mut config = multitenant_gate::Config::new(g.listen, g.upstream, key);
    config.preserve_host = g.preserve_host;
    multitenant_gate::serve(config).map_err(gate_error)
}

/// Key problems exit 4 like the other key problems; the rest (cannot listen, runtime) exit 1.
fn gate_error(e: multitenant_gate::GateError) -> Error {
    use multitenant_gate::GateError as G;
    match e {
        G::KeyMissing { ref var } => {
            let (from, text) = (format!("${var}"), e.to_string());
            let reason = text.strip_prefix(&format!("{from}: ")).unwrap_or(&text).to_string();
            Error::KeyFile { path: from.into(), reason }
        }
        G::KeyInvalid { from, reason } => Error::KeyFile { path: from.into(), reason },
        G::KeyFile { path, reason } => Error::KeyFile { path, reason },
        e => Error::Io(e.to_string()),
    }
}
