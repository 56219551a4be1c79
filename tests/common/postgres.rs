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
    let cluster = cluster(migrate);
    let n = cluster.next.fetch_add(1, Ordering::Relaxed);
    let name = format!("t{}_{n}", std::process::id());
    cluster.psql(&format!("CREATE DATABASE {name} TEMPLATE handoff_template"));
    cluster.url(&name)
}

/// An empty database (no schema): for `cloud copy` and `migrate` tests.
pub fn empty_database(migrate: fn(&str)) -> String {
    let cluster = cluster(migrate);
    let n = cluster.next.fetch_add(1, Ordering::Relaxed);
    let name = format!("e{}_{n}", std::process::id());
    cluster.psql(&format!("CREATE DATABASE {name}"));
    cluster.url(&name)
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
        let Some(pid) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Cluster {
    fn start(migrate: fn(&str)) -> Cluster {
        let bin = bin_dir();
        remove_leftovers();
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the cluster's directory");
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
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
        // Trust for everyone but the password role, which must prove it.
        let hba = format!("local all {PASSWORD_ROLE} scram-sha-256\nlocal all all trust\n");
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
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
                .args([
                    "-c",
                    "listen_addresses=",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                ])
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
        cluster.psql("CREATE DATABASE handoff_template");
        migrate(&cluster.url("handoff_template"));
        cluster.psql(&format!(
            "GRANT ALL ON DATABASE handoff_template TO {PASSWORD_ROLE}"
        ));
        cluster
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

/// The database name in a URL [`fresh_database`] made.
pub fn database_name(url: &str) -> &str {
    let after = url.rsplit_once('/').map_or(url, |(_, db)| db);
    after.split('?').next().unwrap_or(after)
}
