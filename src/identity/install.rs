//! Installing an issued pairing identity where `claim` and the daemon read
//! it (`<state-dir>/pairing-identity/`), and describing one.
//!
//! The files come from the user (the client key and certificate they were
//! issued, with the CA that issued the certificate and verifies processors'
//! pairing ports). Before anything is written they are checked to belong
//! together — the certificate is for the key, issued (by signature) by the
//! CA, and inside its validity dates — so that a wrong file is reported
//! here, by name, and not as a TLS alert at a customer's processor.
//!
//! The directory is staged next to its final place (0700, files 0600, each
//! fsynced) and renamed into place, so a crash leaves the old identity or
//! the new one. A different identity already there is only replaced when
//! asked, and then kept as `pairing-identity.bak-<time>/`.

use std::fs::{self, DirBuilder};
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use super::IdentityError;
use super::authority::first_certificate;
use super::check::check_signed_certificate;
use super::files::{DIR_MODE, write_private};
use super::keys::PrivateKey;
use super::simulator::PairingIdentity;

/// The installed names, in the order key, certificate, CA.
pub const INSTALLED_NAMES: [&str; 3] = ["client-key.pem", "client-cert.pem", "authority-ca.pem"];

/// Names accepted in a source directory for each file, first match wins:
/// handoff's own, then the usual short ones.
pub const KEY_NAMES: &[&str] = &["client-key.pem", "key.pem", "client.key"];
pub const CERT_NAMES: &[&str] = &["client-cert.pem", "cert.pem", "client.crt", "client.pem"];
pub const CA_NAMES: &[&str] = &["authority-ca.pem", "ca.pem", "ca.crt", "ca-cert.pem"];

const HINT_KEY: &str = "the client's private key (also looked for key.pem, client.key)";
const HINT_CERT: &str =
    "the client's certificate (also looked for cert.pem, client.crt, client.pem)";
const HINT_CA: &str = "the CA that issued the client's certificate (also looked for ca.pem, \
                       ca.crt, ca-cert.pem)";

/// A pairing identity's three PEM texts, each with where it came from (a
/// path, or a name in a package) for messages. The key's text is wiped
/// when dropped and never shown.
pub struct IdentityPems {
    pub key: Zeroizing<String>,
    pub certificate: String,
    pub authority_ca: String,
    /// Where each came from: key, certificate, CA.
    pub sources: [String; 3],
}

impl std::fmt::Debug for IdentityPems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityPems")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

/// What a certificate says about itself, for people: no key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFacts {
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER, upper-case hex pairs separated by colons (as
    /// `openssl x509 -fingerprint -sha256` prints it).
    pub sha256: String,
}

/// What [`install`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// Nothing was there (or an empty directory).
    New,
    /// The same three files were already there; nothing was written.
    Unchanged,
    /// A different identity was there; it was moved to `backup`.
    Replaced { backup: PathBuf },
}

impl IdentityPems {
    /// Reads the three files from `dir`, by the names in [`KEY_NAMES`],
    /// [`CERT_NAMES`] and [`CA_NAMES`].
    ///
    /// # Errors
    /// [`IdentityError::Missing`] naming the first missing file;
    /// [`IdentityError::Io`]; [`IdentityError::Corrupt`] if one is not text.
    pub fn read_dir(dir: &Path) -> Result<Self, IdentityError> {
        match fs::metadata(dir) {
            Err(source) => {
                return Err(IdentityError::Io {
                    path: dir.to_owned(),
                    source,
                });
            }
            Ok(m) if !m.is_dir() => {
                return Err(IdentityError::NotAnIdentity {
                    reason: format!(
                        "{} is a file: give the directory that holds the identity's three files",
                        dir.display()
                    ),
                });
            }
            Ok(_) => {}
        }
        // The bundle `handoff cloud enroll` writes is the other identity a
        // site box holds: say so rather than name a missing file.
        if dir.join(super::daemon::BUNDLE_CA).exists() {
            return Err(IdentityError::NotAnIdentity {
                reason: format!(
                    "{} is a cloud identity bundle (from `handoff cloud enroll`, for \
                     --cloud-identity), not a pairing identity",
                    dir.display()
                ),
            });
        }
        let (key_path, key) = read_one(dir, KEY_NAMES, HINT_KEY)?;
        let key = Zeroizing::new(key);
        let (cert_path, certificate) = read_one(dir, CERT_NAMES, HINT_CERT)?;
        let (ca_path, authority_ca) = read_one(dir, CA_NAMES, HINT_CA)?;
        Ok(IdentityPems {
            key,
            certificate,
            authority_ca,
            sources: [key_path, cert_path, ca_path].map(|p| p.display().to_string()),
        })
    }

    /// Checks that the three belong together and are valid at `now` (Unix
    /// seconds); returns the client certificate's facts.
    ///
    /// # Errors
    /// [`IdentityError::NotAnIdentity`] saying which file is wrong and why.
    pub fn check(&self, now: i64) -> Result<CertificateFacts, IdentityError> {
        let [key_src, cert_src, ca_src] = &self.sources;
        let refuse = |reason: String| IdentityError::NotAnIdentity { reason };
        let key = PrivateKey::from_pem(&self.key)
            .map_err(|e| refuse(format!("{key_src} is not a usable private key: {e}")))?;
        let facts =
            certificate_facts(&self.certificate).map_err(|e| refuse(format!("{cert_src}: {e}")))?;
        let ca =
            certificate_facts(&self.authority_ca).map_err(|e| refuse(format!("{ca_src}: {e}")))?;
        match check_signed_certificate(&key, &self.certificate, &self.authority_ca) {
            Ok(()) => {}
            Err(IdentityError::KeyMismatch) => {
                return Err(refuse(format!(
                    "{cert_src} is not the certificate of the key in {key_src} (their public \
                     keys differ): they do not belong together"
                )));
            }
            Err(IdentityError::NotSignedByRoot { reason }) => {
                return Err(refuse(format!(
                    "{cert_src} was not issued by the CA in {ca_src}: {reason}"
                )));
            }
            Err(e) => return Err(refuse(format!("{cert_src}: {e}"))),
        }
        for (src, f) in [(cert_src, &facts), (ca_src, &ca)] {
            if f.not_after < now {
                return Err(refuse(format!(
                    "{src} expired on {} (certificate '{}')",
                    human_time(f.not_after),
                    f.subject
                )));
            }
            if f.not_before > now {
                return Err(refuse(format!(
                    "{src} is not valid before {} (certificate '{}'): is this machine's clock right?",
                    human_time(f.not_before),
                    f.subject
                )));
            }
        }
        Ok(facts)
    }
}

/// The first file of `names` that exists in `dir`, with its text.
fn read_one(
    dir: &Path,
    names: &[&str],
    hint: &'static str,
) -> Result<(PathBuf, String), IdentityError> {
    for name in names {
        let path = dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| IdentityError::Corrupt {
                    path: path.clone(),
                    reason: "it is not text (PEM)".to_owned(),
                })?;
                return Ok((path, text));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(IdentityError::io(path, e)),
        }
    }
    Err(IdentityError::Missing {
        path: dir.join(names[0]),
        hint,
    })
}

/// The facts of the first certificate in `pem`.
///
/// # Errors
/// [`IdentityError::BadCertificate`] if there is none or it is unreadable.
pub fn certificate_facts(pem: &str) -> Result<CertificateFacts, IdentityError> {
    facts_of_der(&first_certificate(pem, "certificate")?)
}

/// The facts of every certificate in `pem` (a CA bundle), in order.
///
/// # Errors
/// [`IdentityError::BadCertificate`] if one is unreadable or there is none.
pub fn all_certificate_facts(pem: &str) -> Result<Vec<CertificateFacts>, IdentityError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let all = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|der| {
            der.map_err(|e| IdentityError::BadCertificate {
                what: "certificate",
                reason: e.to_string(),
            })
            .and_then(|der| facts_of_der(&der))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if all.is_empty() {
        return Err(IdentityError::BadCertificate {
            what: "certificate",
            reason: "no PEM certificate in it".to_owned(),
        });
    }
    Ok(all)
}

fn facts_of_der(der: &[u8]) -> Result<CertificateFacts, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError::BadCertificate {
        what: "certificate",
        reason: e.to_string(),
    })?;
    let validity = cert.validity();
    Ok(CertificateFacts {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        sha256: fingerprint(der),
    })
}

/// SHA-256 as colon-separated hex, through the one crypto provider handoff
/// already has (rustls' aws-lc-rs): its TLS 1.3 SHA-256 suite's hash.
/// The SHA-256 of `der` as `AB:CD:…`, as `openssl x509 -fingerprint
/// -sha256` prints it.
pub fn fingerprint(der: &[u8]) -> String {
    let hash = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .map(|suite| suite.common.hash_provider.hash(der));
    match hash {
        Some(out) => out
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
        None => String::new(),
    }
}

/// `2035-10-31 00:00:00 UTC`.
pub fn human_time(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{unix} (Unix time)"),
    }
}

/// `2035-10-31T00:00:00Z`, for JSON.
pub fn rfc3339(unix: i64) -> String {
    human_time(unix).replacen(' ', "T", 1).replace(" UTC", "Z")
}

/// Writes `pems` as `target/` (the names in [`INSTALLED_NAMES`]): staged
/// in a 0700 sibling directory, then renamed into place. A different
/// identity at `target` is refused unless `force`, and then moved to
/// `<target>.bak-<UTC time>/` first. The parent is made (0700) if missing.
///
/// # Errors
/// [`IdentityError::IdentityExists`] without `force`;
/// [`IdentityError::Io`]. Nothing is left half-written: the staging
/// directory is removed, and a backup is moved back if the new identity
/// could not be put in place.
pub fn install(
    pems: &IdentityPems,
    target: &Path,
    force: bool,
    now: i64,
) -> Result<Installed, IdentityError> {
    let contents: [&[u8]; 3] = [
        pems.key.as_bytes(),
        pems.certificate.as_bytes(),
        pems.authority_ca.as_bytes(),
    ];
    let (parent, name) = match (target.parent(), target.file_name()) {
        (Some(parent), Some(name)) => (parent, name.to_string_lossy().into_owned()),
        _ => {
            return Err(IdentityError::NotAnIdentity {
                reason: format!("{} cannot hold a pairing identity", target.display()),
            });
        }
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let mut backup = None;
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(IdentityError::io(target, e)),
        Ok(meta) if !meta.is_dir() => {
            return Err(IdentityError::NotAnIdentity {
                reason: format!("{} exists and is not a directory", target.display()),
            });
        }
        Ok(_) => {
            let existing: Vec<Option<Vec<u8>>> = INSTALLED_NAMES
                .iter()
                .map(|n| fs::read(target.join(n)).ok())
                .collect();
            let same = existing
                .iter()
                .zip(contents)
                .all(|(have, want)| have.as_deref() == Some(want));
            // The same files, usable as they are (modes included).
            if same && PairingIdentity::load(target).is_ok() {
                return Ok(Installed::Unchanged);
            }
            let empty = fs::read_dir(target)
                .map_err(|e| IdentityError::io(target, e))?
                .next()
                .is_none();
            if !empty {
                // The same content with wrong modes loses nothing when
                // rewritten: no --force needed.
                if !force && !same {
                    return Err(IdentityError::IdentityExists {
                        path: target.to_owned(),
                    });
                }
                let kept = free_name(parent, &format!("{name}.bak-{}", stamp(now)));
                fs::rename(target, &kept).map_err(|e| IdentityError::io(&kept, e))?;
                backup = Some(kept);
            }
        }
    }
    let result = stage_and_rename(parent, &name, target, contents);
    match (result, backup) {
        (Ok(()), None) => Ok(Installed::New),
        (Ok(()), Some(backup)) => Ok(Installed::Replaced { backup }),
        (Err(e), Some(backup)) => {
            // Put the old one back: nothing changed.
            let _ = fs::rename(&backup, target);
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

fn stage_and_rename(
    parent: &Path,
    name: &str,
    target: &Path,
    contents: [&[u8]; 3],
) -> Result<(), IdentityError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(parent)
        .map_err(|e| IdentityError::io(parent, e))?;
    let staging = parent.join(format!(
        ".{name}.tmp-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    DirBuilder::new()
        .mode(DIR_MODE)
        .create(&staging)
        .map_err(|e| IdentityError::io(&staging, e))?;
    let staged = INSTALLED_NAMES
        .iter()
        .zip(contents)
        .try_for_each(|(file, bytes)| write_private(&staging, file, bytes))
        // An empty directory at `target` is replaced by the rename.
        .and_then(|()| fs::rename(&staging, target).map_err(|e| IdentityError::io(target, e)))
        .and_then(|()| Ok(crate::atomic_file::sync_dir(parent)?));
    if staged.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    staged
}

/// `20260103T115500Z`.
fn stamp(unix: i64) -> String {
    rfc3339(unix).replace(['-', ':'], "")
}

/// `parent/base`, or `parent/base-2`… if that is taken.
fn free_name(parent: &Path, base: &str) -> PathBuf {
    let mut path = parent.join(base);
    let mut n = 2;
    while fs::symlink_metadata(&path).is_ok() {
        path = parent.join(format!("{base}-{n}"));
        n += 1;
    }
    path
}

/// Now, in Unix seconds.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}
