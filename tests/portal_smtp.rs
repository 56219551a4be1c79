//! Sign-in mail through a real SMTP server: `handoff cloud serve --config`
//! with `[smtp]`, against aiosmtpd (tests/common/smtp.rs) on loopback,
//! inside each test's private network. What the relay received is read
//! back, its link signs in; a relay that is down, has a certificate from
//! another CA, or refuses the password gives a page that says the mail was
//! not sent, a log line with the cause, and never the link.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;

use common::browser::{Browser, Reply};
use common::smtp::{SmtpOptions, SmtpServer, TestCa};
use common::{ChildGuard, TempDir};

const PRO: &str = "pro@example.com";
const PASSWORD: &str = "relay-secret-7f3a";

/// `cloud serve --config` on `dir/cloud`, its portal on plain HTTP on
/// loopback, its log (at debug) read line by line.
struct Served {
    data: PathBuf,
    browser: Browser,
    log: Receiver<String>,
    _cloud: ChildGuard,
}

/// The `[smtp]` lines for a relay on `port`.
fn smtp_section(port: u16, extra: &str) -> String {
    format!(
        "[smtp]\nhost = \"localhost\"\nport = {port}\nfrom = \"handoff Places \
         <places@example.com>\"\n{extra}"
    )
}

fn serve(dir: &TempDir, smtp: &str) -> Served {
    let data = dir.path("cloud");
    let web = format!("127.0.0.1:{}", common::free_port());
    let config = dir.path(&format!("serve-{}.toml", common::free_port()));
    std::fs::write(
        &config,
        format!("[web]\nlisten = \"{web}\"\nplain_http = true\n\n{smtp}"),
    )
    .unwrap();
    let mut child = cloud_serve(&data, &config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start handoff cloud serve");
    let log = common::stderr_lines(&mut child);
    common::wait_line(&log, "serving the relay on");
    Served {
        data,
        browser: Browser::new(web.parse().unwrap()),
        log,
        _cloud: ChildGuard(child),
    }
}

fn cloud_serve(data: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(common::handoff_bin());
    cmd.arg("cloud")
        .arg("--data")
        .arg(data)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .arg("--config")
        .arg(config)
        .env("HANDOFF_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

impl Served {
    /// Asks the sign-in page for a link to `email`.
    async fn ask(&mut self, email: &str) -> Reply {
        let form = self.browser.get("/sign-in").await;
        let csrf = form.csrf();
        self.browser
            .post(
                "/sign-in",
                &[("csrf", &csrf), ("email", email), ("next", "/")],
            )
            .await
    }

    /// Asks for a link the relay cannot take: the page says so, and shows
    /// no link. Returns the portal's log line about it.
    async fn ask_and_fail(&mut self, email: &str) -> String {
        let page = self.ask(email).await;
        assert_eq!(page.status, 503, "{}", page.body);
        assert!(
            page.body.contains("the sign-in mail could not be sent"),
            "{}",
            page.body
        );
        assert!(
            page.body.contains("handoff cloud sign-in-link"),
            "the page names the operator's way: {}",
            page.body
        );
        assert!(!has_link(&page.body), "{}", page.body);
        let seen = common::wait_line(&self.log, "the sign-in mail could not be sent");
        for line in &seen {
            assert!(!has_link(line), "a link in the log: {line}");
            assert!(!line.contains(PASSWORD), "the password in the log: {line}");
        }
        seen.last().unwrap().clone()
    }

    /// Nothing written to the mail drop (no silent fallback).
    fn no_mail_drop(&self) {
        assert!(
            !self.data.join("mail").exists(),
            "sign-in mail went to DATA/mail/ although [smtp] is set"
        );
    }
}

/// Whether `text` holds a sign-in link (`/sign-in/` and its secret).
fn has_link(text: &str) -> bool {
    text.match_indices("/sign-in/")
        .any(|(at, m)| text[at + m.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()))
}

/// The link in a mail the relay received.
fn link_in(mail: &str) -> String {
    mail.lines()
        .find(|l| l.contains("/sign-in/"))
        .expect("a link in the mail")
        .trim()
        .to_owned()
}

/// A password file readable by its owner only.
fn password_file(dir: &TempDir, password: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path(&format!("smtp-password-{}", common::free_port()));
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

lan_test! {
    fn a_sign_in_link_goes_through_starttls_with_a_private_ca_and_signs_in() {
        let dir = TempDir::new("smtp-starttls");
        let ca = TestCa::new(&dir, "relay");
        let relay = SmtpServer::start(&dir, SmtpOptions { tls: Some(&ca), ..Default::default() });
        let mut served = serve(
            &dir,
            &smtp_section(relay.port, &format!("ca = \"{}\"\n", ca.ca.display())),
        );
        common::runtime().block_on(async {
            let asked = served.ask(PRO).await;
            assert_eq!(asked.status, 303, "{}", asked.body);
            let shown = served.browser.get(asked.header("location").unwrap()).await;
            assert!(shown.body.contains("is on its way"), "{}", shown.body);
            assert!(!shown.body.contains("DATA/mail"), "{}", shown.body);
            assert!(!has_link(&shown.body), "{}", shown.body);

            let mails = relay.received();
            assert_eq!(mails.len(), 1, "{mails:?}");
            let mail = &mails[0];
            assert!(mail.contains(&format!("X-Envelope-To: {PRO}")), "{mail}");
            assert!(mail.contains("X-Envelope-From: places@example.com"), "{mail}");
            assert!(mail.contains("Subject: Your handoff Places sign-in link"), "{mail}");
            served.no_mail_drop();
            let seen = common::wait_line(&served.log, "sign-in mail sent");
            assert!(seen.iter().all(|l| !has_link(l)), "{seen:#?}");

            // The mailed link signs in through the portal.
            let link = link_in(mail);
            let signed = served.browser.follow_sign_in_link(&link).await;
            assert_eq!(signed.status, 303, "{}", signed.body);
            let home = served.browser.get("/").await;
            assert_eq!(home.status, 200, "{}", home.body);
            assert!(home.body.contains(PRO), "{}", home.body);
            assert!(home.body.contains("Sign out"), "{}", home.body);
        });
    }
}

lan_test! {
    fn implicit_tls_and_plain_smtp_to_loopback_deliver_too() {
        let dir = TempDir::new("smtp-modes");
        let ca = TestCa::new(&dir, "relay");
        let implicit = SmtpServer::start(
            &dir,
            SmtpOptions { tls: Some(&ca), implicit: true, ..Default::default() },
        );
        let plain = SmtpServer::start(&dir, SmtpOptions::default());
        let modes = [
            (&implicit, format!("tls = \"tls\"\nca = \"{}\"\n", ca.ca.display())),
            (&plain, "tls = \"none\"\n".to_owned()),
        ];
        for (relay, extra) in modes {
            let mut served = serve(&dir, &smtp_section(relay.port, &extra));
            common::runtime().block_on(async {
                let asked = served.ask(PRO).await;
                assert_eq!(asked.status, 303, "{extra}: {}", asked.body);
            });
            let mails = relay.received();
            assert_eq!(mails.len(), 1, "{extra}: {mails:?}");
            assert!(has_link(&mails[0]), "{}", mails[0]);
            served.no_mail_drop();
        }
    }
}

lan_test! {
    fn a_relay_that_is_down_gives_a_page_that_says_so_and_no_link_anywhere() {
        let dir = TempDir::new("smtp-down");
        // Nothing listens there.
        let mut served = serve(&dir, &smtp_section(common::free_port(), ""));
        common::runtime().block_on(async {
            let line = served.ask_and_fail(PRO).await;
            assert!(line.contains("Connection refused") || line.contains("connection"), "{line}");
            served.no_mail_drop();
            // An address no relay can be given is refused as one, not
            // tried (and told "could not be sent").
            let odd = served.ask("a\"b@example.com").await;
            assert_eq!(odd.status, 400, "{}", odd.body);
            assert!(odd.body.contains("not an email address"), "{}", odd.body);
            // The failed requests counted: the sixth for the address is
            // refused by the limit before any try.
            for _ in 1..5 {
                served.ask_and_fail(PRO).await;
            }
            let limited = served.ask(PRO).await;
            assert_eq!(limited.status, 429, "{}", limited.body);
        });
    }
}

lan_test! {
    fn a_relay_certificate_from_another_ca_is_refused_with_a_clear_log_line() {
        let dir = TempDir::new("smtp-other-ca");
        let ours = TestCa::new(&dir, "ours");
        let theirs = TestCa::new(&dir, "theirs");
        let relay = SmtpServer::start(&dir, SmtpOptions { tls: Some(&theirs), ..Default::default() });
        let mut served = serve(
            &dir,
            &smtp_section(relay.port, &format!("ca = \"{}\"\n", ours.ca.display())),
        );
        common::runtime().block_on(async {
            let line = served.ask_and_fail(PRO).await;
            assert!(line.contains("certificate"), "{line}");
            assert!(line.contains("UnknownIssuer"), "{line}");
        });
        assert!(relay.received().is_empty());
        served.no_mail_drop();
    }
}

lan_test! {
    fn a_wrong_smtp_password_is_refused_and_the_right_one_sends() {
        let dir = TempDir::new("smtp-auth");
        let ca = TestCa::new(&dir, "relay");
        let relay = SmtpServer::start(
            &dir,
            SmtpOptions { tls: Some(&ca), login: Some(("places", PASSWORD)), ..Default::default() },
        );
        let login = |password: &str| {
            format!(
                "ca = \"{}\"\nuser = \"places\"\npassword_file = \"{}\"\n",
                ca.ca.display(),
                password_file(&dir, password).display()
            )
        };
        {
            let mut served = serve(&dir, &smtp_section(relay.port, &login("not-the-password")));
            common::runtime().block_on(async {
                let line = served.ask_and_fail(PRO).await;
                assert!(line.contains("535"), "the relay's refusal: {line}");
            });
            assert!(relay.next_auth().ends_with("refused"));
            assert!(relay.received().is_empty());
            served.no_mail_drop();
        }
        let mut served = serve(&dir, &smtp_section(relay.port, &login(PASSWORD)));
        common::runtime().block_on(async {
            let asked = served.ask(PRO).await;
            assert_eq!(asked.status, 303, "{}", asked.body);
        });
        assert!(relay.next_auth().ends_with("accepted"));
        let mails = relay.received();
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert!(has_link(&mails[0]), "{}", mails[0]);
    }
}

lan_test! {
    fn smtp_mistakes_in_the_config_name_the_key_and_nothing_is_created() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("smtp-config");
        let open = password_file(&dir, PASSWORD);
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cases = [
            (
                "[smtp]\nhost = \"smtp.example.com\"\ntls = \"none\"\nfrom = \"a@example.com\"\n",
                "key `smtp.tls`",
            ),
            (
                &format!(
                    "[smtp]\nhost = \"localhost\"\nfrom = \"a@example.com\"\nuser = \"u\"\n\
                     password_file = \"{}\"\n",
                    open.display()
                ),
                "key `smtp.password_file`",
            ),
            (
                "[smtp]\nhost = \"localhost\"\nfrom = \"a@example.com\"\nca = \"/nonexistent.pem\"\n",
                "key `smtp.ca`",
            ),
            (
                "[smtp]\nhost = \"localhost\"\nfrom = \"a@example.com\"\ntls = \"ssl\"\n",
                "key `smtp.tls`",
            ),
            ("[smtp]\nhost = \"localhost\"\nfrom = \"not an address\"\n", "key `smtp.from`"),
        ];
        for (smtp, key) in cases {
            let config = dir.path("bad.toml");
            std::fs::write(
                &config,
                format!("[web]\nlisten = \"127.0.0.1:{}\"\n\n{smtp}", common::free_port()),
            )
            .unwrap();
            let data = dir.path("cloud");
            let out = cloud_serve(&data, &config)
                .stderr(Stdio::piped())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{smtp}: {stderr}");
            assert!(stderr.contains(key), "{smtp}: wanted {key}: {stderr}");
            assert!(!data.exists(), "{smtp}: the data directory was created");
        }
        // The mode is told, and how to fix it.
        let config = dir.path("bad.toml");
        std::fs::write(
            &config,
            format!(
                "[web]\nlisten = \"127.0.0.1:1\"\n[smtp]\nhost = \"localhost\"\nfrom = \
                 \"a@example.com\"\nuser = \"u\"\npassword_file = \"{}\"\n",
                open.display()
            ),
        )
        .unwrap();
        let out = cloud_serve(&dir.path("cloud"), &config).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("mode 644") && stderr.contains("chmod 600"), "{stderr}");
        assert!(!stderr.contains(PASSWORD), "{stderr}");
    }
}
