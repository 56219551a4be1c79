//! The Places portal: the vendor's Places list, Share Access and Manage
//! Access screens as web pages, served by `handoff cloud serve --web ADDR`
//! beside the relay, on the same store and the same rules.
//!
//! - [`routes`]: the pages (`/`, `/places/{id}`, sign-in) and who may see
//!   them; [`actions`]: every POST that changes a Place, each through
//!   [`crate::cloud::rules`] and one store transaction, as the operator
//!   CLI does; [`pages`]: the maud templates (HTML-escaped, no script);
//!   [`session`]: sign-in links, sessions, cookies, rate limits;
//!   [`csrf`]: the token every form carries; [`extract`]: the signed-in
//!   request and the signed form, checked once for every route;
//!   [`remote`]: a grey Place for its creator, and Enable remote services
//!   (two steps, never a disable control).
//! - Every POST answers 303 to its page (POST/redirect/GET), the message
//!   kept as the session's one-shot flash; a form sent twice acts once.
//! - HTTPS with a certificate the cloud's CA issues for the listen address
//!   and `localhost` (or `--web-cert/--web-key`); plain HTTP only on a
//!   loopback address, behind a TLS-terminating proxy.
//! - Sign-in mail ([`mail`]) goes through the SMTP relay of `[smtp]`, else
//!   is written as `.eml` files into `DATA/mail/`.
//!
//! The portal depends on `cloud`; nothing in `cloud` knows it exists.

mod actions;
mod csrf;
mod extract;
mod mail;
mod pages;
mod remote;
mod routes;
mod session;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use mail::{SEND_TIMEOUT, SmtpSettings, SmtpTls};
pub use session::{Clock, SIGN_IN_VALIDITY};

use crate::atomic_file;
use crate::cloud::authority::CloudAuthority;
use crate::cloud::store::fresh_secret;
use crate::cloud::{AccountId, CloudError, CloudStore, Timestamp};
use crate::identity::{PrivateKey, TlsIdentity};
use crate::shutdown::{Shutdown, ShutdownTrigger, shutdown_channel};

/// The directory inside the cloud's data directory that sign-in mail is
/// written to.
pub const MAIL_DIR: &str = "mail";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortalError {
    #[error(
        "--web-plain-http serves without TLS, so only on a loopback address (behind a \
         TLS-terminating proxy); {0} is not one"
    )]
    PlainHttpNotLoopback(SocketAddr),
    #[error("the portal's certificate: {0}")]
    Certificate(String),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the sign-in mail: {0}")]
    Mail(#[from] atomic_file::AtomicFileError),
}

/// How the portal speaks to browsers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebTls {
    /// A certificate the cloud's CA issues at each start.
    CloudCa,
    /// PEM files: the certificate chain and its key.
    Files { cert: PathBuf, key: PathBuf },
    /// Plain HTTP, on loopback only.
    PlainHttp,
}

#[derive(Clone, Debug)]
pub struct PortalOptions {
    pub listen: SocketAddr,
    pub tls: WebTls,
    /// The cloud's data directory: its CA and `mail/`.
    pub data_dir: PathBuf,
    /// The address people open, for links in mail [default: from the
    /// listen address, `localhost` for loopback].
    pub url: Option<String>,
    pub clock: Clock,
    /// Where requests are counted, by route and status.
    pub metrics: Arc<crate::cloud::metrics::CloudMetrics>,
    /// The relay sign-in mail goes through; `None`: `.eml` files in
    /// `DATA/mail/`.
    pub smtp: Option<SmtpSettings>,
}

/// What the routes share.
#[derive(Debug)]
pub(crate) struct Portal {
    store: Arc<CloudStore>,
    mailer: mail::Mailer,
    url: String,
    /// `Secure` on the cookies: everywhere but plain HTTP.
    secure: bool,
    clock: Clock,
    limits: Mutex<session::SignInLimits>,
    metrics: Arc<crate::cloud::metrics::CloudMetrics>,
}

/// A running portal on its own task.
#[derive(Debug)]
pub struct RunningPortal {
    pub local_addr: SocketAddr,
    /// The address people open (links in mail start with it).
    pub url: String,
    /// Where sign-in mail goes, in words.
    pub mail: String,
    stop: ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
}

impl RunningPortal {
    /// Binds `options.listen` and serves the portal on `store`.
    ///
    /// # Errors
    /// [`PortalError`] when plain HTTP is asked for off loopback, the
    /// certificate cannot be had, or the socket cannot be bound.
    pub async fn start(
        store: Arc<CloudStore>,
        options: PortalOptions,
    ) -> Result<RunningPortal, PortalError> {
        let plain = matches!(options.tls, WebTls::PlainHttp);
        if plain && !options.listen.ip().is_loopback() {
            return Err(PortalError::PlainHttpNotLoopback(options.listen));
        }
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| PortalError::Io {
                    context: format!("listening on {}", options.listen),
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| PortalError::Io {
            context: "reading the listening address".into(),
            source,
        })?;
        let acceptor = match &options.tls {
            WebTls::PlainHttp => None,
            tls => Some(TlsAcceptor::from(
                crate::tls::web_server_config(&identity(tls, &options.data_dir, local_addr)?)
                    .map_err(CloudError::from)?,
            )),
        };
        let url = options
            .url
            .clone()
            .unwrap_or_else(|| default_url(local_addr, plain));
        let mailer = mail::Mailer::new(options.smtp.as_ref(), options.data_dir.join(MAIL_DIR))?;
        let mail = mailer.describe();
        let portal = Arc::new(Portal {
            store,
            mailer,
            url: url.trim_end_matches('/').to_owned(),
            secure: !plain,
            clock: options.clock,
            limits: Mutex::new(session::SignInLimits::default()),
            metrics: options.metrics,
        });
        let (stop, stopped) = shutdown_channel();
        let task = tokio::spawn(serve(listener, routes::router(portal), acceptor, stopped));
        Ok(RunningPortal {
            local_addr,
            url,
            mail,
            stop,
            task,
        })
    }

    pub async fn stop(self) {
        self.stop.fire();
        let _ = self.task.await;
    }
}

/// `https://localhost:PORT` for a loopback or unspecified address (the
/// certificate names `localhost`), else the address itself.
fn default_url(addr: SocketAddr, plain: bool) -> String {
    let scheme = if plain { "http" } else { "https" };
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        format!("{scheme}://localhost:{}", addr.port())
    } else {
        format!("{scheme}://{addr}")
    }
}

fn identity(tls: &WebTls, data_dir: &Path, addr: SocketAddr) -> Result<TlsIdentity, PortalError> {
    match tls {
        WebTls::Files { cert, key } => {
            let read = |path: &Path| {
                std::fs::read_to_string(path).map_err(|source| PortalError::Io {
                    context: format!("reading {}", path.display()),
                    source,
                })
            };
            let key = PrivateKey::from_pem(&read(key)?)
                .map_err(|e| PortalError::Certificate(format!("{}: {e}", key.display())))?;
            Ok(TlsIdentity {
                key,
                certificate_pem: read(cert)?,
            })
        }
        _ => {
            let authority = CloudAuthority::load_or_create(data_dir).map_err(CloudError::from)?;
            let mut hosts = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
                hosts.push(addr.ip().to_string());
            }
            Ok(authority.web_identity(&hosts).map_err(CloudError::from)?)
        }
    }
}

/// How long a client may take to finish its TLS handshake or send a
/// request's headers.
const SLOW_CLIENT: Duration = Duration::from_secs(10);

async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    mut shutdown: Shutdown,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "portal: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.wait() => return,
        };
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(routes::Client(peer.ip()))),
        );
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(SLOW_CLIENT);
            let served = match tls {
                None => http.serve_connection(TokioIo::new(tcp), service).await,
                Some(acceptor) => match tokio::time::timeout(SLOW_CLIENT, acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(stream)) => http.serve_connection(TokioIo::new(stream), service).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "portal: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "portal: connection ended");
            }
        });
    }
}

/// Issues a sign-in link for `account`, valid `valid_for` seconds from
/// `now`: what the sign-in page mails and `cloud sign-in-link` prints.
///
/// # Errors
/// [`CloudError`] when the store or the randomness fails.
pub fn sign_in_link(
    store: &CloudStore,
    account: &AccountId,
    url: &str,
    now: Timestamp,
    valid_for: u64,
) -> Result<String, CloudError> {
    let secret = fresh_secret()?;
    store.put_sign_in(&secret, account, now.plus(valid_for), now)?;
    Ok(format!("{}/sign-in/{secret}", url.trim_end_matches('/')))
}
