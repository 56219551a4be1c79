//! Sign-in mail: through an SMTP relay (lettre) when `[smtp]` is
//! configured, else written as `.eml` files into `DATA/mail/` (what the
//! demo and the tests read).
//!
//! The link is a credential for 15 minutes: it is never logged, and a
//! failed send is never turned into a file on disk. lettre's own
//! `tracing` feature is off, since at debug it logs the whole
//! conversation (the link and AUTH included).

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use zeroize::Zeroizing;

use super::PortalError;
use crate::atomic_file::{self, Readers};
use crate::cloud::store::fresh_secret;
use crate::cloud::{AccountId, CloudError, Timestamp};

/// How long one sign-in mail may take to be handed to the relay (connect,
/// TLS, AUTH, DATA), so that a request never waits longer for it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

const SUBJECT: &str = "Your handoff Places sign-in link";

/// How the relay is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded by STARTTLS, which must succeed (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only to a relay on loopback.
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }
    }
}

/// `[smtp]`, read and checked at start: the password file read, the CA
/// parsed.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// The account and its password, for AUTH.
    pub login: Option<(String, Zeroizing<String>)>,
    pub from: Mailbox,
    /// The relay's CA (its roots only); `None`: the system's roots.
    pub ca: Option<Vec<CertificateDer<'static>>>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.login.as_ref().map(|(user, _)| user))
            .field("from", &self.from.to_string())
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// Where sign-in mail goes.
pub(super) enum Mailer {
    /// `.eml` files in this directory.
    Drop(PathBuf),
    Smtp {
        /// Boxed: far larger than a path, and made once.
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
        /// `host:port`, for the logs.
        relay: String,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Drop(dir) => f.debug_tuple("Drop").field(dir).finish(),
            Mailer::Smtp { relay, .. } => f.debug_struct("Smtp").field("relay", relay).finish(),
        }
    }
}

/// Why a sign-in mail did not leave.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error("the relay {relay} did not take it within {}s", SEND_TIMEOUT.as_secs())]
    TimedOut { relay: String },
    #[error("the relay {relay}: {source}")]
    Smtp {
        relay: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("the mail cannot be written: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("{0} is not an address a mail can go to: {1}")]
    Address(String, lettre::address::AddressError),
    #[error(transparent)]
    Drop(#[from] PortalError),
}

impl Mailer {
    /// The SMTP transport for `settings`, or the mail drop in `dir`.
    ///
    /// # Errors
    /// [`PortalError::Certificate`] when the CA cannot be used by rustls.
    pub(super) fn new(
        settings: Option<&SmtpSettings>,
        dir: PathBuf,
    ) -> Result<Mailer, PortalError> {
        let Some(s) = settings else {
            return Ok(Mailer::Drop(dir));
        };
        let tls_error = |e: lettre::transport::smtp::Error| {
            PortalError::Certificate(format!("the SMTP relay's TLS settings: {e}"))
        };
        let tls = match s.tls {
            SmtpTls::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(s.host.clone());
                if let Some(ca) = &s.ca {
                    params = params.certificate_store(CertificateStore::None);
                    for cert in ca {
                        params = params.add_root_certificate(
                            Certificate::from_der(cert.to_vec()).map_err(tls_error)?,
                        );
                    }
                }
                let params = params.build_rustls().map_err(tls_error)?;
                if mode == SmtpTls::Implicit {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .tls(tls)
            .timeout(Some(SEND_TIMEOUT));
        if let Some((user, password)) = &s.login {
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        Ok(Mailer::Smtp {
            transport: Box::new(builder.build()),
            from: s.from.clone(),
            relay: format!("{}:{}", s.host, s.port),
        })
    }

    /// Where mail goes, for the start-up line.
    pub(super) fn describe(&self) -> String {
        match self {
            Mailer::Drop(dir) => format!("{} (.eml files; no SMTP)", dir.display()),
            Mailer::Smtp { relay, .. } => format!("the SMTP relay {relay}"),
        }
    }

    pub(super) fn is_drop(&self) -> bool {
        matches!(self, Mailer::Drop(_))
    }

    /// Sends (or writes) the sign-in mail carrying `link` to `to`. Logs
    /// where it went, never the link.
    pub(super) async fn send(
        &self,
        to: &AccountId,
        link: &str,
        now: Timestamp,
    ) -> Result<(), SendError> {
        match self {
            Mailer::Drop(dir) => {
                let (dir, owner, link) = (dir.clone(), to.clone(), link.to_owned());
                let path =
                    tokio::task::spawn_blocking(move || write_mail(&dir, &owner, &link, now))
                        .await
                        .map_err(|e| PortalError::Io {
                            context: "writing the sign-in mail".into(),
                            source: std::io::Error::other(e),
                        })??;
                tracing::info!(%to, mail = %path.display(), "portal: sign-in link written");
                Ok(())
            }
            Mailer::Smtp {
                transport,
                from,
                relay,
            } => {
                let mailbox: Mailbox = to
                    .as_str()
                    .parse()
                    .map_err(|e| SendError::Address(to.as_str().to_owned(), e))?;
                let mail = lettre::Message::builder()
                    .from(from.clone())
                    .to(mailbox)
                    .subject(SUBJECT)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body(link))?;
                tracing::info!(%to, %relay, "portal: sending a sign-in mail");
                match tokio::time::timeout(SEND_TIMEOUT, transport.send(mail)).await {
                    Err(_) => Err(SendError::TimedOut {
                        relay: relay.clone(),
                    }),
                    Ok(Err(source)) => Err(SendError::Smtp {
                        relay: relay.clone(),
                        source,
                    }),
                    Ok(Ok(answer)) => {
                        let said = answer.message().next().unwrap_or_default();
                        tracing::info!(%to, %relay, code = %answer.code(), said, "portal: sign-in mail sent");
                        Ok(())
                    }
                }
            }
        }
    }
}

fn body(link: &str) -> String {
    format!(
        "Open this link to sign in to handoff Places:\r\n\r\n{link}\r\n\r\nIt works once, for \
         15 minutes. If you did not ask for it, ignore this mail.\r\n"
    )
}

/// Writes the sign-in mail for `to` into `dir` (0700; the file 0600,
/// written whole or not at all): the link is a credential for 15 minutes.
fn write_mail(
    dir: &Path,
    to: &AccountId,
    link: &str,
    now: Timestamp,
) -> Result<PathBuf, PortalError> {
    crate::identity::files::ensure_private_dir(dir).map_err(CloudError::from)?;
    let name = format!("{}-{}.eml", now.0, &fresh_secret()?[..8]);
    let path = dir.join(name);
    let text = format!(
        "From: handoff Places <no-reply@handoff.invalid>\r\nTo: <{to}>\r\nSubject: \
         {SUBJECT}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}",
        body(link)
    );
    atomic_file::write(&path, text.as_bytes(), Readers::Owner)?;
    Ok(path)
}
