//! Claiming a processor: the button handshake, checked and kept.
//!
//! [`claim`] runs the procedure as four steps:
//!
//! 1. resolve: find the processor the integrator named ([`Target`]),
//!    through discovery or at `--address`;
//! 2. pair: a fresh key (RSA-2048 unless asked otherwise) and CSR whose
//!    `DeviceUID` is the MAC of our interface towards the processor; the
//!    pairing port (8083) with the configured pairing identity; the button
//!    press; the signed certificate checked against our key and the root
//!    the processor returned;
//! 3. verify: the main port (8081) with the new certificate, trusting that
//!    root only; the serial and MAC it reports over this authenticated
//!    channel must be what discovery (or the command line) said;
//! 4. store: key, certificate, processor CA and the main port's public key
//!    under `<state-dir>/credentials/<serial>/`, plus `claim.json`.
//!
//! Nothing is written before step 4, so a failure or a Ctrl-C anywhere
//! before leaves no trace. What the user sees while waiting is the
//! caller's business, through [`ClaimProgress`].
//!
//! Pairing never tells the cloud anything: the homeowner claim (the
//! `claimed` event, with [`ClaimOutcome::event`] as its proof) is the
//! caller's, sent through the site client ([`crate::site`]).

mod connect;
mod device_uid;
mod inspect;
mod record;
pub mod takeover;
mod target;
mod wire;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use connect::{MainPortIdentity, is_credential_refusal};
pub use device_uid::{ANONYMOUS_DEVICE_UID, device_uid_towards};
pub use inspect::read_house;
pub use record::{ClaimRecord, credential_files};
pub use target::{Resolved, Target, discover, resolve};
pub use wire::parse_device_uid;

use crate::identity::{
    Credential, CredentialStore, IdentityError, KeyAlgorithm, PairingIdentity, PrivateKey,
    TlsIdentity, check_signed_certificate,
};
use crate::leap::CsrParameters;
pub use crate::leap::pairing::human;
use crate::leap::pairing::{DEFAULT_BUTTON_WINDOW, PairingError};
use crate::processor::{Mac, Serial};

/// How long discovery looks for the named processor by default.
pub const DEFAULT_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a claim or release failed. Each message says what happened and
/// what to do next, for an integrator on site.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    #[error(transparent)]
    Discovery(#[from] crate::discovery::DiscoveryError),
    #[error(transparent)]
    Lan(#[from] crate::lan::LanError),
    #[error(
        "no processor with {target} answered on {searched} within {} — check that this \
         machine is on the processor's network, or name the processor by its IP address \
         instead (every command that takes PROCESSOR accepts one)",
        humantime::format_duration(*.waited)
    )]
    NotFound {
        target: String,
        searched: String,
        waited: Duration,
    },
    /// Not found, but a processor that answered has an id, serial or MAC
    /// one or two keystrokes away: most likely a typo.
    #[error(
        "no processor with {target} answered on {searched} within {} — did you mean {near}?",
        humantime::format_duration(*.waited)
    )]
    NotFoundNear {
        target: String,
        searched: String,
        waited: Duration,
        near: String,
    },
    #[error(
        "the processor with {target} advertises no address — name the processor by its IP address instead"
    )]
    NoAddress { target: String },
    #[error(
        "processor {id} is already paired (credential in {}) — run `handoff unpair {id}` \
         first if you mean to pair with it again",
        .dir.display()
    )]
    AlreadyClaimed { id: String, dir: PathBuf },
    #[error(
        "cannot reach {processor} on port {port}: {reason} — is it powered and on this network?"
    )]
    Unreachable {
        processor: String,
        port: u16,
        reason: String,
    },
    #[error(
        "the processor refused our pairing identity (TLS bad certificate) — is \
         --pairing-identity the right one for this processor? ({processor})"
    )]
    PairingIdentityRefused { processor: String },
    /// Anyone holding the shared pairing identity can answer on the
    /// pairing port with it; a real processor never does.
    #[error(
        "refused: whatever answers at {processor} showed the pairing identity's own \
         certificate on the pairing port, which every client holds — it is not a processor \
         but someone on this network posing as one. No request was sent and nothing was \
         stored; check the address with `handoff discover`"
    )]
    ImpostorOnPairingPort { processor: String },
    #[error(
        "{processor} showed a pairing certificate that is not from the authority in \
         --pairing-identity ({reason}) — is --pairing-identity the right one for this processor?"
    )]
    PairingIdentityUntrusted { processor: String, reason: String },
    #[error(
        "nobody pressed the button on the {processor} within {} — press the small button on \
         the processor ({which}) and run the command again",
        human(.waited)
    )]
    ButtonNotPressed {
        processor: String,
        which: String,
        waited: Duration,
    },
    #[error(
        "{processor} went away during the claim: {detail} — check that it is powered and \
         on the network, then run the command again; nothing was stored"
    )]
    ProcessorVanished { processor: String, detail: String },
    #[error(transparent)]
    Pairing(PairingError),
    #[error("the processor's signing result cannot be trusted: {0} — nothing was stored")]
    SigningResult(#[source] IdentityError),
    #[error(
        "{processor} did not let the new certificate in on its main port ({reason}) — \
         nothing was stored; run the command again"
    )]
    MainPortRefused { processor: String, reason: String },
    #[error(
        "{processor} accepted a TCP connection on port {port}, but the TLS handshake stalled \
         (nothing came back within 10 s). That is typical of an MTU mismatch on the way, such \
         as jumbo frames on one subnet and not the other: small packets pass, the processor's \
         certificate does not. Check the MTU of every hop (for example `ping -M do -s 1472 \
         ADDRESS` must get replies) — nothing was stored"
    )]
    HandshakeStalled { processor: String, port: u16 },
    #[error("{processor} answered its main port unexpectedly: {reason} — nothing was stored")]
    MainPortProtocol { processor: String, reason: String },
    #[error(
        "refused: the processor at {address} says its {what} is {found}, but {source_} said \
         {expected} — another device may be answering at that address; nothing was stored. \
         Check the address (`handoff discover`) and run the command again"
    )]
    Mismatch {
        address: IpAddr,
        what: &'static str,
        expected: String,
        found: String,
        source_: &'static str,
    },
    #[error(
        "{processor} now shows a different key on its main port than when it was claimed — \
         it was not trusted. If the processor was replaced or reset, run `handoff unpair` \
         and pair with it again; if not, another device may be answering at its address"
    )]
    IdentityChanged { processor: String },
    #[error(
        "{processor} no longer accepts handoff's credential (its pairing was removed, or it \
         was reset) — claim it again with `handoff claim`"
    )]
    CredentialRefused { processor: String },
    #[error(
        "no credential for {target} in {} — it is not paired here (paired with another \
         --state-dir?){hint}",
        .dir.display()
    )]
    NotClaimed {
        target: String,
        dir: PathBuf,
        /// For a processor named by address or host: that the record keeps
        /// the one it was paired at.
        hint: &'static str,
    },
    /// Reading a house failed; says what happened and what to do.
    #[error("{0}")]
    HouseRead(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// What the caller shows while a claim runs. Every method has a default
/// that does nothing, so tests implement none.
pub trait ClaimProgress: Send {
    /// The processor was found.
    fn resolved(&mut self, _processor: &Resolved) {}
    /// Connected to the pairing port; the button window is open for
    /// `window` from now.
    fn waiting_for_button(&mut self, _processor: &Resolved, _window: Duration) {}
    /// The press arrived; the CSR is on its way.
    fn button_pressed(&mut self) {}
    /// Checking the processor on its main port.
    fn verifying(&mut self) {}
}

/// A progress that shows nothing.
pub struct Silent;
impl ClaimProgress for Silent {}

/// How to claim.
#[derive(Clone, Debug)]
pub struct ClaimOptions {
    pub target: Target,
    /// Skip discovery and pair with this address.
    pub address: Option<IpAddr>,
    /// Interfaces to browse on; empty: every usable one (see
    /// [`crate::lan::choose_interfaces`]).
    pub interfaces: Vec<String>,
    pub discovery_timeout: Duration,
    pub button_timeout: Duration,
    pub key_algorithm: KeyAlgorithm,
    /// `None`: the MAC of our interface towards the processor.
    pub device_uid: Option<String>,
    /// The `DisplayName` of the CSR (and the certificate's CN).
    pub display_name: String,
    pub state_dir: PathBuf,
    pub export_dir: Option<PathBuf>,
}

impl ClaimOptions {
    pub fn new(target: Target, state_dir: PathBuf) -> ClaimOptions {
        ClaimOptions {
            target,
            address: None,
            interfaces: Vec::new(),
            discovery_timeout: DEFAULT_DISCOVERY_TIMEOUT,
            button_timeout: DEFAULT_BUTTON_WINDOW,
            key_algorithm: KeyAlgorithm::default(),
            device_uid: None,
            display_name: "handoff".into(),
            state_dir,
            export_dir: None,
        }
    }
}

/// What a successful claim kept, and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClaimOutcome {
    pub id: String,
    pub serial: Serial,
    pub mac: Option<Mac>,
    pub address: IpAddr,
    pub product: String,
    pub device_uid: String,
    /// The SHA-256 fingerprint of the processor CA pinned at the claim,
    /// `AB:CD:…`, for the integrator to compare with what a second claim
    /// or the vendor's tool shows. `None` only from an older daemon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_sha256: Option<String>,
    /// The model and firmware discovery advertised, reported with the
    /// claim to the cloud.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    pub credential_dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub exported: Vec<PathBuf>,
}

/// Claims the processor `options` names (see the module docs).
///
/// # Errors
/// Every [`ClaimError`]; after any of them nothing is stored.
pub async fn claim(
    options: &ClaimOptions,
    pairing_identity: &PairingIdentity,
    progress: &mut dyn ClaimProgress,
) -> Result<ClaimOutcome, ClaimError> {
    let resolved = match options.address {
        Some(address) => Resolved::from_address(address, &options.target),
        None => {
            resolve(
                &options.target,
                &options.interfaces,
                options.discovery_timeout,
            )
            .await?
        }
    };
    progress.resolved(&resolved);
    claim_resolved(resolved, options, pairing_identity, progress).await
}

/// Claims a processor already found (steps 2 to 4; the daemon finds it
/// in its live inventory). `options.target`, `address`, `interfaces` and
/// `discovery_timeout` are not used.
///
/// # Errors
/// As [`claim`].
pub async fn claim_resolved(
    resolved: Resolved,
    options: &ClaimOptions,
    pairing_identity: &PairingIdentity,
    progress: &mut dyn ClaimProgress,
) -> Result<ClaimOutcome, ClaimError> {
    let store = CredentialStore::new(&options.state_dir);
    if let Some(serial) = resolved.serial {
        refuse_if_claimed(&store, serial)?;
    }

    let key = PrivateKey::generate(options.key_algorithm)?;
    claim_resolved_with_key(resolved, key, options, pairing_identity, progress).await
}

/// [`claim_resolved`] with a key made beforehand (the daemon keeps one
/// ready, see `daemon::spare_key`), used for this claim only.
///
/// # Errors
/// As [`claim`].
pub async fn claim_resolved_with_key(
    resolved: Resolved,
    key: PrivateKey,
    options: &ClaimOptions,
    pairing_identity: &PairingIdentity,
    progress: &mut dyn ClaimProgress,
) -> Result<ClaimOutcome, ClaimError> {
    let store = CredentialStore::new(&options.state_dir);
    if let Some(serial) = resolved.serial {
        refuse_if_claimed(&store, serial)?;
    }
    let device_uid = options
        .device_uid
        .clone()
        .unwrap_or_else(|| device_uid_towards(resolved.address));
    let csr = CsrParameters {
        device_uid: device_uid.clone(),
        ..CsrParameters::admin(key.csr_pem(&options.display_name)?, &options.display_name)
    };
    let signed = connect::pair(
        &resolved,
        pairing_identity,
        csr,
        options.button_timeout,
        progress,
    )
    .await?;
    check_signed_certificate(&key, &signed.certificate, &signed.root_certificate)
        .map_err(ClaimError::SigningResult)?;
    let mut credential = Credential {
        identity: TlsIdentity {
            key,
            certificate_pem: signed.certificate,
        },
        processor_ca_pem: signed.root_certificate,
        server_identity: None,
    };

    progress.verifying();
    let seen = connect::read_identity(&resolved, &credential).await?;
    let mismatch = |what, expected: String, found: String| ClaimError::Mismatch {
        address: resolved.address,
        what,
        expected,
        found,
        source_: resolved.source,
    };
    if let Some(expected) = resolved.serial
        && expected != seen.serial
    {
        return Err(mismatch(
            "serial",
            format!("{} (id {})", expected.0, expected.id()),
            format!("{} (id {})", seen.serial.0, seen.serial.id()),
        ));
    }
    if let Some(expected) = resolved.mac
        && !seen.macs.contains(&expected)
    {
        let found = seen.macs.iter().map(Mac::to_string).collect::<Vec<_>>();
        return Err(mismatch("MAC", expected.to_string(), found.join(", ")));
    }
    check_certificate_names(&resolved, &seen)?;
    refuse_if_claimed(&store, seen.serial)?;
    credential.server_identity = Some(seen.server.clone());

    let mac = resolved.mac.or_else(|| seen.macs.first().copied());
    let record = ClaimRecord {
        serial: seen.serial,
        id: seen.serial.id(),
        mac,
        address: resolved.address,
        product: resolved.product.clone(),
        device_uid: device_uid.clone(),
        model: resolved.model.clone(),
        firmware: resolved.firmware.clone(),
    };
    store.save(seen.serial, &credential)?;
    record.save(&store.dir(seen.serial))?;
    let mut exported = Vec::new();
    if let Some(dir) = &options.export_dir {
        exported = export(&credential, dir, resolved.address)?;
    }
    let credential_dir = store.dir(seen.serial);
    Ok(ClaimOutcome {
        id: seen.serial.id(),
        serial: seen.serial,
        mac,
        address: resolved.address,
        product: resolved.product,
        device_uid,
        ca_sha256: ca_fingerprint(&credential.processor_ca_pem),
        model: resolved.model,
        firmware: resolved.firmware,
        files: record::credential_files(&credential_dir),
        credential_dir,
        exported,
    })
}

impl ClaimOutcome {
    /// The `claimed` event for the cloud, with the certificate the
    /// processor signed after its button press as the proof.
    ///
    /// # Errors
    /// The processor told no MAC address, or the stored certificate cannot
    /// be read.
    pub fn event(&self) -> Result<crate::proto::EventKind, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mac = self.mac.ok_or_else(|| {
            "the processor did not tell its MAC address, so the claim cannot be relayed".to_owned()
        })?;
        let cert = self.credential_dir.join("cert.pem");
        let pem = std::fs::read(&cert).map_err(|e| format!("reading {}: {e}", cert.display()))?;
        let proof = CertificateDer::from_pem_slice(&pem)
            .map_err(|e| format!("{} holds no certificate: {e}", cert.display()))?;
        Ok(crate::proto::EventKind::Claimed(crate::proto::Claimed {
            place: None,
            serial: self.serial,
            mac,
            proof: proof.to_vec(),
            at: crate::place::now(),
            // The relay signs it as it leaves, once the event has its id
            // (crate::relay::possession).
            possession: None,
            model: self.model.clone(),
            firmware: self.firmware.clone(),
        }))
    }
}

/// Where a product names itself in its certificates (a Caséta bridge's CA
/// is `CN=SmartBridge<MAC>`, processor-protocol.md §2), the MAC named must
/// be the one discovery (or the command line) said, or, without one, one
/// the processor reported on its main port. Products that name nothing
/// pass: there is nothing to compare.
///
/// # Errors
/// [`ClaimError::Mismatch`] naming the MAC the certificate holds.
fn check_certificate_names(resolved: &Resolved, seen: &MainPortIdentity) -> Result<(), ClaimError> {
    for named in &seen.certificate_macs {
        let fits = match resolved.mac {
            Some(expected) => *named == expected,
            None => seen.macs.contains(named),
        };
        if !fits {
            let expected = resolved.mac.map_or_else(
                || {
                    let macs: Vec<_> = seen.macs.iter().map(Mac::to_string).collect();
                    macs.join(", ")
                },
                |m| m.to_string(),
            );
            return Err(ClaimError::Mismatch {
                address: resolved.address,
                what: "MAC in its certificate",
                expected,
                found: named.to_string(),
                source_: if resolved.mac.is_some() {
                    resolved.source
                } else {
                    "its main port"
                },
            });
        }
    }
    Ok(())
}

/// The SHA-256 fingerprint of the first certificate in `pem`, as
/// `openssl x509 -fingerprint -sha256` prints it.
pub fn ca_fingerprint(pem: &str) -> Option<String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    Some(crate::identity::install::fingerprint(&der))
}

fn refuse_if_claimed(store: &CredentialStore, serial: Serial) -> Result<(), ClaimError> {
    let dir = store.dir(serial);
    if dir.exists() {
        return Err(ClaimError::AlreadyClaimed {
            id: serial.id(),
            dir,
        });
    }
    Ok(())
}

/// Writes the pylutron-caseta and Home Assistant files into `dir`; Home
/// Assistant's entry is named after the processor's address, as its
/// integration names it.
fn export(
    credential: &Credential,
    dir: &Path,
    address: IpAddr,
) -> Result<Vec<PathBuf>, ClaimError> {
    credential.export_pylutron_caseta(dir)?;
    let entry = address.to_string();
    credential.export_home_assistant(dir, &entry)?;
    let mut files: Vec<PathBuf> = ["caseta.key", "caseta.crt", "caseta-bridge.crt"]
        .iter()
        .map(|n| dir.join(n))
        .collect();
    for part in ["key", "cert", "ca"] {
        files.push(dir.join(format!("lutron_caseta-{entry}-{part}.pem")));
    }
    Ok(files)
}

/// Checks a claimed processor at `address` with its stored credential:
/// the main port must show the key pinned at the claim and report the
/// same serial. A changed key is [`ClaimError::IdentityChanged`], and
/// the stored pin is left as it was.
///
/// # Errors
/// [`ClaimError::Identity`] if there is no usable credential;
/// [`ClaimError::IdentityChanged`], [`ClaimError::Mismatch`], or a
/// connection failure.
pub async fn verify_claimed(
    state_dir: &Path,
    serial: Serial,
    address: IpAddr,
) -> Result<MainPortIdentity, ClaimError> {
    let store = CredentialStore::new(state_dir);
    let credential = store.load(serial)?;
    let record = ClaimRecord::load(&store.dir(serial));
    let resolved = Resolved {
        address,
        serial: Some(serial),
        mac: record.as_ref().and_then(|r| r.mac),
        product: record.map_or_else(|| "processor".to_owned(), |r| r.product),
        model: None,
        firmware: None,
        source: "the stored claim",
    };
    let seen = connect::read_identity(&resolved, &credential).await?;
    check_certificate_names(&resolved, &seen)?;
    if seen.serial != serial {
        return Err(ClaimError::Mismatch {
            address,
            what: "serial",
            expected: format!("{} (id {})", serial.0, serial.id()),
            found: format!("{} (id {})", seen.serial.0, seen.serial.id()),
            source_: resolved.source,
        });
    }
    Ok(seen)
}

/// Where a claimed processor named otherwise than by address is: found by
/// browsing for it, or already known (a daemon's live inventory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locate {
    /// Browse for it for up to this long.
    Browse(std::time::Duration),
    /// It answers at this address.
    At(std::net::IpAddr),
}

/// Opens the main port of the claimed processor `target` names, with its
/// stored credential: at the address typed, else as `locate` says.
///
/// # Errors
/// [`ClaimError::NotClaimed`] without a credential; as
/// [`connect::open_main_port`] and [`resolve`].
pub async fn open_claimed(
    state_dir: &Path,
    target: &Target,
    locate: Locate,
) -> Result<
    (
        Resolved,
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    ),
    ClaimError,
> {
    let (serial, mac) = paired(state_dir, target)?;
    let store = CredentialStore::new(state_dir);
    let credential = store.load(serial)?;
    let record = ClaimRecord::load(&store.dir(serial));
    let address = match (target, locate) {
        (Target::Address(ip), _) => *ip,
        (_, Locate::At(ip)) => ip,
        (_, Locate::Browse(timeout)) => {
            resolve(&Target::Serial(serial), &[], timeout)
                .await?
                .address
        }
    };
    let resolved = Resolved {
        address,
        serial: Some(serial),
        mac,
        product: record.map_or_else(|| "processor".to_owned(), |r| r.product),
        model: None,
        firmware: None,
        source: "the stored claim",
    };
    let stream = connect::open_main_port(&resolved, &credential).await?;
    Ok((resolved, stream))
}

/// The paired processor `target` names: by serial or id directly, by MAC,
/// address or host through the stored claim records. Returns its serial
/// and the MAC its claim record holds.
///
/// # Errors
/// [`ClaimError::NotClaimed`] if no stored credential matches;
/// [`ClaimError::Identity`] if the store cannot be read.
pub fn paired(state_dir: &Path, target: &Target) -> Result<(Serial, Option<Mac>), ClaimError> {
    let store = CredentialStore::new(state_dir);
    let serials = store.serials()?;
    let found = serials.into_iter().find(|serial| match target {
        Target::Serial(s) => s == serial || s.0.to_string() == serial.id(),
        Target::Id(id) => *id == serial.id(),
        other => ClaimRecord::load(&store.dir(*serial)).is_some_and(|r| r.matches(other)),
    });
    let Some(serial) = found else {
        let hint = match target {
            Target::Address(_) | Target::HostName(_) => {
                "; a processor is found here by the address it was paired at: if its address \
                 changed, name it by its serial, id or MAC"
            }
            _ => "",
        };
        return Err(ClaimError::NotClaimed {
            target: target.to_string(),
            dir: state_dir.join("credentials"),
            hint,
        });
    };
    let mac = ClaimRecord::load(&store.dir(serial)).and_then(|r| r.mac);
    Ok((serial, mac))
}

/// Forgets the credential kept for `serial` (the cloud is not told).
///
/// # Errors
/// The credential store cannot be changed.
pub fn forget(state_dir: &Path, serial: Serial) -> Result<(), ClaimError> {
    CredentialStore::new(state_dir).remove(serial)?;
    Ok(())
}

/// After Remove Home from Account was handed to the cloud: forgets the
/// credential only when the cloud applied the release, so that a refusal
/// (or no answer yet) leaves both sides as they were. Returns whether the
/// credential was forgotten.
///
/// # Errors
/// The credential store cannot be changed.
pub fn settle_release(
    state_dir: &Path,
    serial: Serial,
    relayed: &crate::relay::Relayed,
) -> Result<bool, ClaimError> {
    match relayed {
        crate::relay::Relayed::Applied(_) => forget(state_dir, serial).map(|()| true),
        _ => Ok(false),
    }
}

/// [`paired`], then [`forget`]: unpairing, with no word to the cloud.
///
/// # Errors
/// As those two.
pub fn unpair(state_dir: &Path, target: &Target) -> Result<(Serial, Option<Mac>), ClaimError> {
    let (serial, mac) = paired(state_dir, target)?;
    forget(state_dir, serial)?;
    Ok((serial, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A processor named by address is looked up by the address it was
    /// paired at; when none matches, the error says to name it otherwise
    /// (DHCP moves processors), and only then.
    #[test]
    fn not_paired_by_address_says_how_to_name_a_processor_that_moved() {
        let dir = tempfile::tempdir().unwrap();
        let by_address = paired(dir.path(), &Target::parse("192.0.2.7")).unwrap_err();
        assert!(
            by_address
                .to_string()
                .contains("if its address changed, name it by its serial"),
            "{by_address}"
        );
        let by_serial = paired(dir.path(), &Target::parse("12345678")).unwrap_err();
        assert!(
            by_serial.to_string().contains("not paired here"),
            "{by_serial}"
        );
        assert!(
            !by_serial.to_string().contains("address changed"),
            "{by_serial}"
        );
    }
}
