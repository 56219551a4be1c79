//! A throwaway PostgreSQL cluster for the tests, from Debian's
//! `postgresql` package: one per test process, started on first use, one
//! fresh database per test (a copy of a migrated template).
//!
//! The cluster listens on a Unix socket only, in its temporary directory:
//! a filesystem socket reaches the tests' private network namespaces,
//! loopback TCP does not. initdb refuses root, so as root the cluster runs
//! as the `postgres` user. The postmaster is started by `setpriv
//! --pdeathsig` from a thread that lives as long as the test process, so
//! it is told to stop (SIGINT, a fast shutdown) when the process ends,
//! whatever ends it; the next start removes directories so left behind.
//!
//! Also included by the library's own store tests
//! (`src/cloud/store/tests.rs`), so it names no crate.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The role with a password, for the wrong-password test.
pub const PASSWORD_ROLE: &str = "secured";
pub const PASSWORD: &str = "right-password";

const PREFIX: &str = "handoff-pg-";

pub struct Cluster {
    /// The socket directory (and the cluster's home).
    pub dir: PathBuf,
    bin: PathBuf,
    next: AtomicU32,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The cluster of this test process, started on first use with a template
/// database that `migrate(url)` brings to the schema.
///
/// # Panics
/// Without PostgreSQL installed: the message says what to install.
pub fn cluster(migrate: fn(&str)) -> &'static Cluster {
    CLUSTER.get_or_init(|| Cluster::start(migrate))
}

/// A fresh, migrated database of this process's cluster: its URL.
pub fn fresh_database(migrate: fn(&str)) -> String {
    cluster(migrate).fresh_database()
}

/// An empty database (no schema): for `cloud copy` and `migrate` tests.
pub fn empty_database(migrate: fn(&str)) -> String {
    let cluster = cluster(migrate);
    let n = cluster.next.fetch_add(1, Ordering::Relaxed);
    let name = format!("e{}_{n}", std::process::id());
    cluster.psql(&format!("CREATE DATABASE {name}"));
    cluster.url(&name)
}

/// Tests need no durability; `bench/cloud` does (HANDOFF_PG_DURABLE=1),
/// or PostgreSQL would be compared with a redb that fsyncs.
fn durability() -> Vec<&'static str> {
    if std::env::var_os("HANDOFF_PG_DURABLE").is_some() {
        vec![]
    } else {
        vec![
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
    }
}

/// More `-c NAME=VALUE` settings for the shared cluster, space-separated
/// in `HANDOFF_PG_SETTINGS` (`bench/cloud --statements` loads
/// pg_stat_statements this way).
fn extra_settings() -> Vec<String> {
    std::env::var("HANDOFF_PG_SETTINGS")
        .unwrap_or_default()
        .split_whitespace()
        .flat_map(|s| ["-c".to_owned(), s.to_owned()])
        .collect()
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): the cloud store \
             tests run against a real one; `apt-get install postgresql`"
        )
    })
}

fn is_root() -> bool {
    // The tests run as root in CI; /proc says who we are without a crate.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `cmd` as the cluster's owner: `postgres` when we are root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--pdeathsig=INT",
            "--",
        ]);
        cmd.arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Removes the directories of clusters whose test process is gone.
fn remove_leftovers() {
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or(rest);
        if !Path::new("/proc").join(pid).exists() {
            // A private cluster's postmaster outlives its test process.
            let data = entry.path().join("data");
            if data.join("postmaster.pid").exists() {
                let _ = as_owner(&bin_dir().join("pg_ctl"))
                    .args(["stop", "-m", "immediate", "-D"])
                    .arg(&data)
                    .output();
            }
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Cluster {
    fn start(migrate: fn(&str)) -> Cluster {
        remove_leftovers();
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
        // Trust for everyone but the password role, which must prove it.
        let hba = format!("local all {PASSWORD_ROLE} scram-sha-256\nlocal all all trust\n");
        let (bin, data) = init(&dir, &hba);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let postgres = bin.join("postgres");
        let socket_dir = dir.clone();
        // The postmaster's parent is this thread: it must outlive every
        // test, so it never returns (--pdeathsig fires when it exits).
        std::thread::spawn(move || {
            let mut child = as_owner(&postgres)
                .arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(&socket_dir)
                .args(["-c", "listen_addresses="])
                .args(durability())
                .args(extra_settings())
                .args(["-c", "max_connections=300"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start postgres");
            let stderr = child.stderr.take().expect("stderr");
            let mut log = Vec::new();
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("ready to accept connections")
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(Ok(()));
                }
                if ready.is_some() {
                    log.push(line);
                }
            }
            if let Some(tx) = ready.take() {
                let _ = tx.send(Err(log.join("\n")));
            }
            let _ = child.wait();
            loop {
                std::thread::park();
            }
        });
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(log)) => panic!("postgres did not start:\n{log}"),
            Err(_) => panic!("postgres did not start"),
        }
        let cluster = Cluster {
            dir,
            bin,
            next: AtomicU32::new(0),
        };
        cluster.psql(&format!(
            "CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'"
        ));
        cluster.make_template(migrate);
        cluster.psql_in(
            "handoff_template",
            &format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO {PASSWORD_ROLE}"),
        );
        cluster
    }

    fn make_template(&self, migrate: fn(&str)) {
        self.psql("CREATE DATABASE handoff_template");
        migrate(&self.url("handoff_template"));
    }

    /// A fresh, migrated database of this cluster: its URL.
    pub fn fresh_database(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        self.psql(&format!("CREATE DATABASE {name} TEMPLATE handoff_template"));
        self.url(&name)
    }

    /// A libpq URL for `db` as `user` with `password`, over the socket.
    pub fn url_as(&self, db: &str, user: &str, password: &str) -> String {
        format!(
            "postgresql://{user}:{password}@/{db}?host={}",
            self.dir.display()
        )
    }

    /// A libpq URL for `db` as the superuser, over the socket.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@/{db}?host={}", self.dir.display())
    }

    /// Runs one statement as the superuser.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs one statement in `db` as the superuser; its output, unaligned.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-h",
            ])
            .arg(&self.dir)
            .args(["-d", db, "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Cluster {
    /// `psql` on `db` as the superuser, reading statements from its stdin:
    /// a session a test keeps open (to hold a lock) while it does more.
    pub fn session(&self, db: &str) -> std::process::Child {
        Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(&self.dir)
            .args(["-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql")
    }

    /// Waits until `sql` (one value) in `db` says `want`.
    pub fn wait_until(&self, db: &str, sql: &str, want: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let got = self.psql_in(db, sql);
            if got == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{sql} is still {got:?}, not {want:?}, after 120 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The database name in a URL [`fresh_database`] made.
pub fn database_name(url: &str) -> &str {
    let before_query = url.split('?').next().unwrap_or(url);
    before_query
        .rsplit_once('/')
        .map_or(before_query, |(_, db)| db)
}

/// A new cluster's directory `dir` (owned by the cluster's owner), after
/// initdb, with `hba` as its pg_hba.conf: (bin dir, data dir).
fn init(dir: &Path, hba: &str) -> (PathBuf, PathBuf) {
    let bin = bin_dir();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("the cluster's directory");
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir)
            .status()
            .expect("chown");
        assert!(status.success(), "chown postgres {}", dir.display());
    }
    let data = dir.join("data");
    let out = as_owner(&bin.join("initdb"))
        .args(["-D"])
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
    (bin, data)
}

static PRIVATE: AtomicU32 = AtomicU32::new(0);

/// A cluster of one test's own, for the tests that stop and restart
/// PostgreSQL (the shared one must stay up for its other tests). Started
/// by `pg_ctl` with a Unix socket in its directory; stopped (`-m
/// immediate`) and removed when dropped, or by the next test run's
/// [`remove_leftovers`] if the test process was killed.
///
/// Unlike the shared cluster it commits synchronously (`synchronous_commit`
/// on): a test that stops it with `-m immediate` checks that nothing
/// acknowledged is lost, and an asynchronous commit may lose the last
/// ones by design. `fsync` stays off: only the postmaster dies, not the
/// kernel, so what was written survives.
pub struct Private {
    pub cluster: Cluster,
    data: PathBuf,
}

impl Private {
    /// Starts a private cluster with `settings` (postgresql.conf lines)
    /// and `hba` as its pg_hba.conf, and a template `migrate` brings to
    /// the schema.
    pub fn start(migrate: fn(&str), settings: &[String], hba: &str) -> Private {
        remove_leftovers();
        let n = PRIVATE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-p{n}", std::process::id()));
        let (bin, data) = init(&dir, hba);
        let mut conf = format!(
            "\nlisten_addresses = ''\nunix_socket_directories = '{}'\nfsync = off\n\
             full_page_writes = off\nsynchronous_commit = on\nmax_connections = 300\n",
            dir.display()
        );
        for line in settings {
            conf.push_str(line);
            conf.push('\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        std::io::Write::write_all(&mut file, conf.as_bytes()).expect("postgresql.conf");
        let private = Private {
            cluster: Cluster {
                dir,
                bin,
                next: AtomicU32::new(0),
            },
            data,
        };
        private.start_again();
        private.cluster.make_template(migrate);
        private
    }

    /// The default private cluster: a Unix socket only.
    pub fn on_socket(migrate: fn(&str)) -> Private {
        Private::start(migrate, &[], "local all all trust\n")
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = as_owner(&self.cluster.bin.join("pg_ctl"))
            .args(args)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.cluster.dir.join("log"))
            .stdin(Stdio::null())
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.cluster.dir.join("log")).unwrap_or_default()
        );
    }

    /// `pg_ctl stop -m immediate`: every backend ends at once, nothing is
    /// checkpointed; the next start recovers from the WAL.
    pub fn stop_immediate(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }

    /// Starts it (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        self.pg_ctl(&["start", "-w", "-t", "120"]);
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = as_owner(&self.cluster.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data)
            .output();
        let _ = std::fs::remove_dir_all(&self.cluster.dir);
    }
}
