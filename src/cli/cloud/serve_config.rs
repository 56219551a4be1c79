//! `handoff cloud serve --config FILE`: the portal's `[web]` section in a
//! TOML file, so a unit file need not carry every flag, and `[smtp]`, the
//! relay sign-in mail goes through. A flag given on
//! the command line wins over the file's key. Mistakes are refused as the
//! site daemon's configuration refuses them (the key and its line; an
//! unknown key is never ignored). `cloud-serve.example.toml` at the top of
//! the repository documents every key; a test parses it.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::ServeArgs;
use crate::cli::CliError;
use crate::portal::{SmtpSettings, SmtpTls, WebTls};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServeFile {
    #[serde(default)]
    web: WebSection,
    smtp: Option<SmtpSection>,
}

/// `[smtp]`: the relay sign-in mail goes through (without it, `.eml`
/// files in `DATA/mail/`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpSection {
    host: String,
    port: Option<u16>,
    #[serde(default)]
    tls: TlsMode,
    user: Option<String>,
    password_file: Option<PathBuf>,
    from: String,
    ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TlsMode {
    #[default]
    Starttls,
    Tls,
    None,
}

/// `[web]`: the same settings as the `--web…` flags.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WebSection {
    listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    plain_http: Option<bool>,
    url: Option<String>,
}

/// The portal's settings, flags over file: where it listens, how it
/// speaks TLS, and the address people open. `None`: no portal.
#[derive(Debug, PartialEq)]
pub(super) struct Web {
    pub listen: SocketAddr,
    pub tls: WebTls,
    pub url: Option<String>,
}

/// Reads `--config FILE` (when given) and merges the flags over it: the
/// portal's settings and its SMTP relay (the password file read, the CA
/// parsed).
///
/// # Errors
/// [`CliError::Failed`] for a file that cannot be read or has a mistake
/// (naming the file, line and key); [`CliError::Usage`] for settings that
/// cannot go together.
pub(super) fn web_settings(
    args: &ServeArgs,
) -> Result<(Option<Web>, Option<SmtpSettings>), CliError> {
    let (file, path) = match &args.config {
        Some(path) => (
            crate::daemon::config::load_toml::<ServeFile>(path)
                .map_err(|e| CliError::Failed(e.to_string()))?,
            path.as_path(),
        ),
        None => (ServeFile::default(), Path::new("")),
    };
    let web = merge(args, file.web)?;
    let smtp = match file.smtp {
        None => None,
        Some(_) if web.is_none() => {
            return Err(CliError::Usage(format!(
                "{}: key `smtp`: sign-in mail is sent by the portal, and there is none: add \
                 `listen` in [web] (or --web ADDR), or remove [smtp]",
                path.display()
            )));
        }
        Some(section) => Some(smtp(section, path)?),
    };
    Ok((web, smtp))
}

/// Checks `[smtp]` and reads what it names.
fn smtp(section: SmtpSection, path: &Path) -> Result<SmtpSettings, CliError> {
    let bad = |key: &str, why: String| {
        CliError::Failed(format!("{}: key `smtp.{key}`: {why}", path.display()))
    };
    let tls = match section.tls {
        TlsMode::Starttls => SmtpTls::StartTls,
        TlsMode::Tls => SmtpTls::Implicit,
        TlsMode::None => SmtpTls::None,
    };
    if section.host.is_empty() {
        return Err(bad("host", "empty: name the relay".into()));
    }
    if tls == SmtpTls::None && !is_loopback(&section.host) {
        return Err(bad(
            "tls",
            format!(
                "\"none\" sends the sign-in links (and any password) in clear, so only to a \
                 relay on loopback; {} is not one: use \"starttls\" or \"tls\"",
                section.host
            ),
        ));
    }
    let from = section.from.parse().map_err(|e| {
        bad(
            "from",
            format!("{:?} is not a mail address: {e}", section.from),
        )
    })?;
    let login = match (section.user, &section.password_file) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(bad(
                "user",
                "a user needs its password: add `password_file`".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(bad(
                "password_file",
                "a password needs its account: add `user`".into(),
            ));
        }
        (Some(user), Some(file)) => Some((
            user,
            password(file).map_err(|why| bad("password_file", why))?,
        )),
    };
    let ca = match &section.ca {
        None => None,
        Some(file) => Some(roots(file).map_err(|why| bad("ca", why))?),
    };
    if tls == SmtpTls::None && ca.is_some() {
        return Err(bad(
            "ca",
            "a CA is for a TLS relay, and `tls` is \"none\"".into(),
        ));
    }
    Ok(SmtpSettings {
        port: section.port.unwrap_or(tls.default_port()),
        host: section.host,
        tls,
        login,
        from,
        ca,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The relay's password: the file's first line, from a file nobody but its
/// owner can read.
fn password(file: &Path) -> Result<Zeroizing<String>, String> {
    let meta = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} can be read by others than its owner (mode {mode:o}): `chmod 600 {}`",
            file.display(),
            file.display()
        ));
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?,
    );
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(format!(
            "{} is empty: put the password on its first line",
            file.display()
        ));
    }
    Ok(Zeroizing::new(line.to_owned()))
}

/// The CA certificates (PEM) a private relay's certificate must chain to.
fn roots(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate in it (a PEM `CERTIFICATE` block is expected)",
            file.display()
        ));
    }
    Ok(certs)
}

fn merge(args: &ServeArgs, file: WebSection) -> Result<Option<Web>, CliError> {
    let cert = args.web_cert.clone().or(file.cert);
    let key = args.web_key.clone().or(file.key);
    let plain = args.web_plain_http || file.plain_http.unwrap_or(false);
    let url = args.web_url.clone().or(file.url);
    let Some(listen) = args.web.or(file.listen) else {
        if cert.is_some() || key.is_some() || plain || url.is_some() {
            return Err(CliError::Usage(
                "the portal's settings need an address to serve it on: --web ADDR or `listen` \
                 in [web]"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let tls = match (cert, key, plain) {
        (None, None, true) => WebTls::PlainHttp,
        (Some(_), _, true) | (_, Some(_), true) => {
            return Err(CliError::Usage(
                "plain HTTP and a certificate cannot go together: choose --web-plain-http \
                 (`plain_http`) or --web-cert/--web-key (`cert`/`key`)"
                    .into(),
            ));
        }
        (Some(cert), Some(key), false) => WebTls::Files { cert, key },
        (None, None, false) => WebTls::CloudCa,
        (Some(_), None, false) | (None, Some(_), false) => {
            return Err(CliError::Usage(
                "a certificate needs its key: give both --web-cert and --web-key (`cert` and \
                 `key` in [web])"
                    .into(),
            ));
        }
    };
    Ok(Some(Web { listen, tls, url }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(flags: &[&str]) -> ServeArgs {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let mut argv = vec!["serve"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).unwrap().serve
    }

    fn file(text: &str) -> WebSection {
        crate::daemon::config::parse_toml::<ServeFile>(text, Path::new("serve.toml"))
            .unwrap()
            .web
    }

    #[test]
    fn flags_win_over_the_file() {
        let web = file(
            "[web]\nlisten = \"127.0.0.1:8443\"\nplain_http = true\nurl = \"https://places.example\"\n",
        );
        let merged = merge(&args(&["--web", "127.0.0.1:9443"]), web)
            .unwrap()
            .unwrap();
        assert_eq!(merged.listen, "127.0.0.1:9443".parse().unwrap());
        assert_eq!(merged.tls, WebTls::PlainHttp);
        assert_eq!(merged.url.as_deref(), Some("https://places.example"));
        let web = file("[web]\nlisten = \"127.0.0.1:8443\"\nurl = \"https://a.example\"\n");
        let merged = merge(&args(&["--web-url", "https://b.example"]), web)
            .unwrap()
            .unwrap();
        assert_eq!(merged.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(merged.tls, WebTls::CloudCa);
        assert_eq!(merged.url.as_deref(), Some("https://b.example"));
    }

    #[test]
    fn no_address_no_portal_and_settings_without_one_are_refused() {
        assert_eq!(merge(&args(&[]), WebSection::default()).unwrap(), None);
        let err = merge(&args(&["--web-plain-http"]), WebSection::default()).unwrap_err();
        assert!(matches!(err, CliError::Usage(_)), "{err}");
        let err = merge(
            &args(&[]),
            file("[web]\ncert = \"c.pem\"\nkey = \"k.pem\"\n"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`listen` in [web]"), "{err}");
        let err = merge(
            &args(&["--web", "127.0.0.1:1", "--web-cert", "c.pem"]),
            WebSection::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs its key"), "{err}");
        let err = merge(
            &args(&["--web", "127.0.0.1:1", "--web-plain-http"]),
            file("[web]\ncert = \"c.pem\"\nkey = \"k.pem\"\n"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot go together"), "{err}");
    }

    #[test]
    fn a_mistake_in_the_file_names_its_key_and_line() {
        let bad = |text: &str| {
            crate::daemon::config::parse_toml::<ServeFile>(text, Path::new("serve.toml"))
                .unwrap_err()
                .to_string()
        };
        let typo = bad("[web]\nlisten = \"127.0.0.1:8443\"\nplain_htp = true\n");
        assert!(typo.starts_with("serve.toml:3:"), "{typo}");
        assert!(typo.contains("unknown key `web.plain_htp`"), "{typo}");
        let address = bad("[web]\nlisten = \"localhost\"\n");
        assert!(
            address.contains("serve.toml:2:") && address.contains("key `web.listen`"),
            "{address}"
        );
        let kind = bad("[web]\nplain_http = \"yes\"\n");
        assert!(kind.contains("key `web.plain_http`"), "{kind}");
    }

    #[test]
    fn the_example_file_parses_and_says_what_it_sets() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cloud-serve.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: ServeFile = crate::daemon::config::parse_toml(&text, &path).unwrap();
        assert!(parsed.smtp.is_none());
        let web = merge(&args(&[]), parsed.web).unwrap().unwrap();
        assert_eq!(web.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(web.tls, WebTls::CloudCa);
        // Its [smtp] block, uncommented but for the files it names.
        let smtp_block: String = text[text.find("# [smtp]").unwrap()..]
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| *l == "[smtp]" || (l.contains(" = ") && !l.starts_with("password_file")))
            .filter(|l| !l.starts_with("user") && !l.starts_with("ca "))
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed: ServeFile = crate::daemon::config::parse_toml(&smtp_block, &path).unwrap();
        let smtp = smtp(parsed.smtp.unwrap(), &path).unwrap();
        assert_eq!((smtp.host.as_str(), smtp.port), ("smtp.example.com", 587));
        assert_eq!(smtp.tls, SmtpTls::StartTls);
        assert_eq!(smtp.from.email.to_string(), "places@example.com");
        assert!(smtp.login.is_none() && smtp.ca.is_none());
    }

    fn smtp_file(text: &str) -> Result<SmtpSettings, String> {
        let path = Path::new("serve.toml");
        let parsed: ServeFile = crate::daemon::config::parse_toml(text, path).unwrap();
        smtp(parsed.smtp.unwrap(), path).map_err(|e| e.to_string())
    }

    #[test]
    fn smtp_without_tls_only_to_loopback_and_the_port_follows_the_mode() {
        let with = |host: &str, tls: &str| {
            smtp_file(&format!(
                "[smtp]\nhost = \"{host}\"\ntls = \"{tls}\"\nfrom = \"a@example.com\"\n"
            ))
        };
        for host in ["localhost", "127.0.0.1", "::1", "[::1]"] {
            assert_eq!(with(host, "none").unwrap().port, 25, "{host}");
        }
        for host in ["smtp.example.com", "192.0.2.1", "localhost.example.com"] {
            let err = with(host, "none").unwrap_err();
            assert!(
                err.contains("key `smtp.tls`") && err.contains("loopback"),
                "{err}"
            );
        }
        assert_eq!(with("smtp.example.com", "tls").unwrap().port, 465);
        assert_eq!(
            with("smtp.example.com", "tls").unwrap().tls,
            SmtpTls::Implicit
        );
    }

    #[test]
    fn smtp_files_are_checked_at_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("password");
        std::fs::write(&secret, "s3cret\nignored\n").unwrap();
        let login = format!(
            "[smtp]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\nuser = \"u\"\n\
             password_file = \"{}\"\n",
            secret.display()
        );
        for mode in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = smtp_file(&login).unwrap_err();
            assert!(err.contains("key `smtp.password_file`"), "{err}");
            assert!(err.contains(&format!("mode {mode:o}")), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (user, password) = smtp_file(&login).unwrap().login.unwrap();
        assert_eq!((user.as_str(), password.as_str()), ("u", "s3cret"));
        let half = "[smtp]\nhost = \"h\"\nfrom = \"a@example.com\"\nuser = \"u\"\n";
        assert!(smtp_file(half).unwrap_err().contains("key `smtp.user`"));

        let ca = dir.path().join("ca.pem");
        let with_ca = format!(
            "[smtp]\nhost = \"h\"\nfrom = \"a@example.com\"\nca = \"{}\"\n",
            ca.display()
        );
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let err = smtp_file(&with_ca).unwrap_err();
        assert!(
            err.contains("key `smtp.ca`") && err.contains("no certificate"),
            "{err}"
        );
        let authority = crate::identity::CertificateAuthority::pairing_authority("relay").unwrap();
        std::fs::write(&ca, authority.certificate_pem()).unwrap();
        assert_eq!(smtp_file(&with_ca).unwrap().ca.unwrap().len(), 1);
    }
}
