//! Test harness: every test that advertises, browses or connects runs in a
//! private network namespace of its own, so plain `cargo test` is safe on
//! any machine and tests running in parallel never see each other's mDNS.
//!
//! `lan_test!` re-runs the test binary, filtered to that one test, under
//! `unshare --net` (with a user namespace when not root); inside, the body
//! runs. Processes the body starts live in the same namespace.
#![allow(dead_code)]

pub mod browser;
pub mod postgres;
pub mod python;
pub mod relay_conn;
pub mod smtp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Defines a test whose body runs inside a fresh private network.
#[macro_export]
macro_rules! lan_test {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        #[test]
        $(#[$m])*
        fn $name() {
            common::in_private_lan(stringify!($name), || $body);
        }
    };
}

/// Runs `body` inside a private network: directly when already in one made
/// for this test, otherwise by re-running this test there.
pub fn in_private_lan(test_name: &str, body: impl FnOnce()) {
    if std::env::var_os(handoff::lan::PRIVATE_LAN_ENV).is_some() {
        let all = handoff::lan::interfaces().expect("list interfaces");
        assert!(
            handoff::lan::is_private(&all),
            "the harness's namespace is not private: {all:?}"
        );
        body();
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = handoff::lan::private_lan_command(
        &exe,
        [test_name, "--exact", "--nocapture", "--test-threads=1"],
    )
    .stdin(Stdio::null())
    .output()
    .expect("run unshare (util-linux) for a private network");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test_name} failed inside its private network ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

pub fn handoff_bin() -> &'static str {
    env!("CARGO_BIN_EXE_handoff")
}

/// A scratch directory removed at drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "handoff-test-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `handoff sim` process. Dropping it kills it (no goodbye).
pub struct Sim {
    child: Option<Child>,
    pub manifest: Vec<Value>,
    /// Its `--state-dir`: a scratch one unless the arguments name one.
    pub state_dir: PathBuf,
    _dir: TempDir,
}

impl Sim {
    /// Starts `handoff sim ARGS… --manifest FILE` and waits for the manifest,
    /// which the simulator writes once its services are registered.
    pub fn start(args: &[&str]) -> Sim {
        let dir = TempDir::new("sim");
        let manifest = dir.path("manifest.json");
        // Never the user's own state directory, and never one shared by
        // tests running in parallel.
        let named = args.iter().position(|a| *a == "--state-dir");
        let state_dir = match named {
            Some(i) => PathBuf::from(args[i + 1]),
            None => dir.path("state"),
        };
        let mut command = Command::new(handoff_bin());
        command.arg("sim").args(args);
        if named.is_none() {
            command.arg("--state-dir").arg(&state_dir);
        }
        let child = command
            .arg("--manifest")
            .arg(&manifest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn handoff sim");
        let mut sim = Sim {
            child: Some(child),
            manifest: Vec::new(),
            state_dir,
            _dir: dir,
        };
        sim.manifest = sim.wait_manifest(&manifest);
        sim
    }

    fn wait_manifest(&mut self, path: &Path) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                return serde_json::from_str(&text).expect("manifest is JSON");
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("handoff sim exited early: {status}");
            }
            assert!(Instant::now() < deadline, "handoff sim wrote no manifest");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    /// SIGTERM: the simulator says goodbye and exits 0.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(self.pid_of(&child), nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "sim exited with {status} after SIGTERM");
    }

    /// SIGKILL: the simulator vanishes without a goodbye, like a processor
    /// losing power.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        let _ = child.wait();
    }

    fn pid_of(&self, child: &Child) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(child.id() as i32)
    }

    pub fn ids(&self) -> Vec<String> {
        self.manifest
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The output of a finished `handoff` run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// The account that owns the cloud tests' Places.
pub const OWNER: &str = "designer@example.com";

/// `cloud --data DATA [--database URL]`: the start of every operator
/// command on the store `database` chooses.
pub fn cloud_args<'a>(data: &'a str, database: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec!["cloud", "--data", data];
    if let Some(url) = database {
        args.extend(["--database", url]);
    }
    args
}

/// A data directory with Place `lake-house` owned by OWNER and daemon
/// `site-1` enrolled for OWNER (bundle in `bundle`), on the redb store in
/// DATA or on the PostgreSQL `database`: (data dir, bundle dir, place id).
pub fn setup_on(dir: &TempDir, database: Option<&str>) -> (PathBuf, PathBuf, String) {
    let data = dir.path("cloud");
    let bundle = dir.path("bundle");
    let data_s = data.to_str().unwrap();
    let project = dir.path("project.json");
    let mut create = cloud_args(data_s, database);
    create.extend([
        "place",
        "create",
        "--as",
        OWNER,
        "--remote-services",
        "--project-file",
        project.to_str().unwrap(),
        "--id",
        "lake-house",
    ]);
    let run = handoff(&create);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "lake-house");
    let mut enroll = cloud_args(data_s, database);
    enroll.extend([
        "enroll",
        "--name",
        "site-1",
        "--account",
        OWNER,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    let run = handoff(&enroll);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    (data, bundle, "lake-house".into())
}

/// A current-thread runtime for a test's async parts.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `handoff ARGS…` to completion.
pub fn handoff(args: &[&str]) -> Run {
    let out = Command::new(handoff_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run handoff");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Brings a test database to the schema with `handoff cloud migrate`
/// (the [`postgres`] cluster's template).
pub fn migrate(url: &str) {
    let run = handoff(&["cloud", "migrate", "--database", url]);
    assert_eq!(run.code, Some(0), "cloud migrate: {}", run.stderr);
}

/// The facts that must agree between a manifest entry and what discovery
/// reports.
pub type Facts = (String, u64, String, Vec<String>, String, String, String);

pub fn identity_facts(p: &Value) -> Facts {
    let addresses = p["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    (
        p["id"].as_str().unwrap().to_string(),
        p["serial"].as_u64().unwrap(),
        p["mac"].as_str().unwrap().to_string(),
        addresses,
        p["system_type"].as_str().unwrap().to_string(),
        p["firmware"].as_str().unwrap().to_string(),
        p["devclass"].as_str().unwrap().to_string(),
    )
}

/// A running `handoff discover --watch --json`, read line by line. Events
/// are kept, so waiting for one never loses another that came first.
pub struct Watch {
    child: Child,
    lines: mpsc::Receiver<Value>,
    history: std::cell::RefCell<Vec<Value>>,
    /// Where the window returned by the last wait ended.
    mark: std::cell::Cell<usize>,
}

impl Watch {
    pub fn start(extra: &[&str]) -> Watch {
        let mut child = Command::new(handoff_bin())
            .args(["discover", "--watch", "--json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn handoff discover --watch");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("watch line is not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Watch {
            child,
            lines,
            history: Default::default(),
            mark: Default::default(),
        }
    }

    /// The events since the last returned window, and moves the mark.
    fn window(&self) -> Vec<Value> {
        let history = self.history.borrow();
        let from = self.mark.replace(history.len());
        history[from..].to_vec()
    }

    /// Waits until some event so far satisfies `pred`; returns the events
    /// that arrived since the previous wait or drain. Panics after `limit`.
    pub fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            if self.history.borrow().iter().any(&pred) {
                return self.window();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(ev) => self.history.borrow_mut().push(ev),
                Err(_) => panic!(
                    "no {what} within {limit:?}; events seen: {:#?}",
                    self.history.borrow()
                ),
            }
        }
    }

    /// Collects what arrives within `window`; returns every event since
    /// the previous wait or drain.
    pub fn drain(&self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        while let Ok(ev) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.history.borrow_mut().push(ev);
        }
        self.window()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `event` is `kind` for the processor with this id.
pub fn is_event(ev: &Value, kind: &str, id: &str) -> bool {
    ev["event"] == kind && ev["processor"]["id"] == id
}

/// A `handoff cloud serve` process on its data directory.
pub struct Cloud {
    child: Child,
    pub addr: std::net::SocketAddr,
}

impl Cloud {
    pub fn start(data: &Path, addr: std::net::SocketAddr) -> Cloud {
        Cloud::start_on(data, None, addr)
    }

    /// `cloud serve` on the redb store in `data`, or on `database`.
    pub fn start_on(data: &Path, database: Option<&str>, addr: std::net::SocketAddr) -> Cloud {
        let child = Command::new(handoff_bin())
            .args(["cloud", "--data"])
            .arg(data)
            .args(
                database
                    .map(|url| ["--database", url])
                    .into_iter()
                    .flatten(),
            )
            .args(["serve", "--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start handoff cloud serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the cloud did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Cloud { child, addr }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Kills the child at drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something listens on `addr`.
pub fn wait_for_port(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines `child` writes on its (piped) stderr, as they come.
pub fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    lines_of(child.stderr.take().expect("stderr piped"))
}

/// The lines `from` gives, as they come, read by a thread of their own.
pub fn lines_of(from: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (up to 20 s) for a line containing `text`; every line seen so
/// far is returned, that one last.
pub fn wait_line(lines: &mpsc::Receiver<String>, text: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(text);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {text:?}; saw {seen:#?}"),
        }
    }
}

/// A cloud data directory (`DIR/cloud`) holding Place `lake` for the
/// simulator's first processor, with that processor's CA, created by
/// designer@example.com (remote services on or off), and a site identity
/// bundle for integrator@example.com enrolled into `bundle`.
pub fn lake_place(sim: &Sim, dir: &TempDir, remote_services: bool, bundle: &Path) -> PathBuf {
    let data = dir.path("cloud");
    let data_s = data.to_str().unwrap();
    let p = &sim.manifest[0];
    let (id, serial, mac) = (
        p["id"].as_str().unwrap(),
        p["serial"].as_u64().unwrap().to_string(),
        p["mac"].as_str().unwrap(),
    );
    let ca = sim
        .state_dir
        .join(format!("sim/processors/{id}/ca-cert.pem"));
    let project = dir.path("project.json");
    let mut args = vec![
        "cloud",
        "--data",
        data_s,
        "place",
        "create",
        "--id",
        "lake",
        "--as",
        "designer@example.com",
        "--project-file",
        project.to_str().unwrap(),
        "--serial",
        &serial,
        "--mac",
        mac,
        "--processor-ca",
        ca.to_str().unwrap(),
    ];
    if remote_services {
        args.push("--remote-services");
    }
    let run = handoff(&args);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = handoff(&[
        "cloud",
        "--data",
        data_s,
        "enroll",
        "--name",
        "site-1",
        "--account",
        "integrator@example.com",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    data
}

/// Where `handoff sim --state-dir STATE` exports the pairing identity that
/// clients use with it: under its own `sim/`, never `STATE/pairing-identity`
/// (where an installed, real one lives).
pub fn sim_identity_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(handoff::identity::SIM_PAIRING_IDENTITY_DIR)
}

/// The link in the newest sign-in mail to `email` in `DATA/mail/`.
pub fn newest_link(data: &Path, email: &str) -> String {
    let mut mails: Vec<_> = std::fs::read_dir(data.join("mail"))
        .expect("the mail drop")
        .map(|e| e.unwrap().path())
        .collect();
    mails.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    let mail = mails
        .iter()
        .rev()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|m| m.contains(&format!("To: <{email}>")))
        .expect("a sign-in mail");
    mail.lines()
        .find(|l| l.contains("/sign-in/"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Creates Place `id` by `by` (remote services on or off), with its first
/// processor activated when given.
pub fn create_place(
    store: &handoff::cloud::CloudStore,
    id: &str,
    by: &str,
    remote_services: bool,
    processor: Option<handoff::cloud::ProcessorRecord>,
) {
    let cmd = handoff::cloud::Command::CreatePlace {
        place: handoff::cloud::PlaceId(id.into()),
        by: handoff::cloud::AccountId::new(by),
        key: handoff::cloud::ProjectKey(format!("key-{id}")),
        remote_services,
    };
    store
        .create_place(&cmd, processor, handoff::cloud::now())
        .unwrap()
        .unwrap();
}
