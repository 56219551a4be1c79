//! A real SMTP server on loopback for the portal's mail tests: aiosmtpd
//! (Debian's `python3-aiosmtpd`, which `.ci/run` installs) run by
//! `smtp_server.py` beside this file. Start it inside the test's private
//! network (`lan_test!`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use handoff::identity::{CertificateAuthority, KeyAlgorithm, PrivateKey};

use super::{ChildGuard, TempDir};

/// Debian's interpreter, where python3-aiosmtpd installs (a `python3`
/// earlier on PATH, a pyenv one, would not have it).
const PYTHON: &str = "/usr/bin/python3";

/// A CA and a certificate it issued for `localhost` and 127.0.0.1, as PEM
/// files in `dir`: `NAME-ca.pem`, `NAME-cert.pem`, `NAME-key.pem`.
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new(dir: &TempDir, name: &str) -> TestCa {
        let authority =
            CertificateAuthority::pairing_authority(&format!("{name} test CA")).unwrap();
        let identity = authority
            .issue_for_hosts(
                "localhost",
                &["localhost".into(), "127.0.0.1".into()],
                PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
            )
            .unwrap();
        let files = TestCa {
            ca: dir.path(&format!("{name}-ca.pem")),
            cert: dir.path(&format!("{name}-cert.pem")),
            key: dir.path(&format!("{name}-key.pem")),
        };
        std::fs::write(&files.ca, authority.certificate_pem()).unwrap();
        std::fs::write(&files.cert, &identity.certificate_pem).unwrap();
        std::fs::write(&files.key, identity.key.to_pem().as_bytes()).unwrap();
        files
    }
}

/// What the server is asked to demand.
#[derive(Default)]
pub struct SmtpOptions<'a> {
    /// STARTTLS with this certificate, required.
    pub tls: Option<&'a TestCa>,
    /// With `tls`: TLS from the first byte instead of STARTTLS.
    pub implicit: bool,
    /// AUTH required, with this login only.
    pub login: Option<(&'a str, &'a str)>,
}

/// A running aiosmtpd on `127.0.0.1:port`; stopped at drop.
pub struct SmtpServer {
    pub port: u16,
    out: PathBuf,
    /// Its stdout: `ready`, then one `auth MECHANISM accepted|refused` a try.
    lines: std::sync::mpsc::Receiver<String>,
    _child: ChildGuard,
}

impl SmtpServer {
    pub fn start(dir: &TempDir, options: SmtpOptions) -> SmtpServer {
        let port = super::free_port();
        let out = dir.path(&format!("smtp-received-{port}"));
        std::fs::create_dir_all(&out).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/smtp_server.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script)
            .args(["--port", &port.to_string()])
            .arg("--out")
            .arg(&out);
        if let Some(ca) = options.tls {
            cmd.arg("--cert").arg(&ca.cert).arg("--key").arg(&ca.key);
            if options.implicit {
                cmd.arg("--implicit");
            }
        }
        if let Some((user, password)) = options.login {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run /usr/bin/python3 (python3-aiosmtpd)");
        let lines = super::lines_of(child.stdout.take().unwrap());
        let ready = lines.recv_timeout(Duration::from_secs(30));
        assert_eq!(
            ready.as_deref(),
            Ok("ready"),
            "aiosmtpd did not start (is python3-aiosmtpd installed?)"
        );
        SmtpServer {
            port,
            out,
            lines,
            _child: ChildGuard(child),
        }
    }

    /// Every mail taken so far, oldest first.
    pub fn received(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
        });
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// The server's next report of an AUTH try (`auth MECHANISM accepted`
    /// or `refused`), waiting up to 20 s.
    pub fn next_auth(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("aiosmtpd reported no AUTH try")
    }
}
