//! `handoff pairing-identity install|show`: an issued identity checked and
//! put where `pair`, `claim` and the daemon read it (0700 directory, 0600 files,
//! nothing written when it is refused), and the one an installed
//! pylutron-caseta carries. None of this touches the network.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::python::python_with;
use common::{Run, TempDir, handoff};
use handoff::identity::{PairingAuthority, PairingIdentity};
use serde_json::Value;

const NAMES: [&str; 3] = ["client-key.pem", "client-cert.pem", "authority-ca.pem"];

/// The pinned pylutron-caseta (as `tests/interop_pylutron.rs` has it).
const PYLUTRON: &[&str] = &[
    "pylutron-caseta==0.30.1",
    "cryptography==50.0.2",
    "cffi==2.1.1",
    "pycparser==3.12",
    "orjson==3.13.0",
    "ifaddr==0.2.0",
];

/// SHA-256 of the client certificate pylutron-caseta 0.30.1 carries
/// (`LAP_CERT_PEM`, CN=Caseta Application), as `openssl x509 -fingerprint
/// -sha256` prints it: a public fact about the package, not key material.
const PYLUTRON_CERT_SHA256: &str = "22:5E:A8:49:83:57:6C:B7:70:35:D7:82:B7:87:88:9D:\
                                    0B:78:60:9E:2A:7A:BF:E5:55:16:89:22:12:38:18:D6";

/// A pairing identity exported by the simulator's authority (in a scratch
/// state directory), as a user would copy it from a simulator run.
fn sim_identity(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let authority = PairingAuthority::load_or_create(&dir.0).expect("authority");
    let exported = authority.export_pairing_identity(&dir.0).expect("export");
    (dir, exported)
}

/// A copy of `from`'s three files in a fresh directory, to be edited.
fn copy(from: &Path, tag: &str) -> TempDir {
    let to = TempDir::new(tag);
    for name in NAMES {
        std::fs::copy(from.join(name), to.0.join(name)).unwrap();
    }
    to
}

fn install(state: &Path, args: &[&str]) -> Run {
    let mut all = vec![
        "--state-dir",
        state.to_str().unwrap(),
        "pairing-identity",
        "install",
    ];
    all.extend_from_slice(args);
    handoff(&all)
}

fn show(state: &Path) -> Value {
    let run = handoff(&[
        "--state-dir",
        state.to_str().unwrap(),
        "pairing-identity",
        "show",
        "--json",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.json()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn same_files(a: &Path, b: &Path) -> bool {
    NAMES
        .iter()
        .all(|n| std::fs::read(a.join(n)).ok() == std::fs::read(b.join(n)).ok())
}

/// No key material in what a run printed: neither a PEM key header nor
/// any base64 line of the key file.
fn assert_no_key(run: &Run, key_file: &Path) {
    let out = format!("{}{}", run.stdout, run.stderr);
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    let key = std::fs::read_to_string(key_file).unwrap();
    for line in key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
    {
        assert!(!out.contains(line), "key material printed");
    }
}

#[test]
fn the_simulators_files_are_installed_private_and_read_back() {
    let (_sim, from) = sim_identity("pi-sim");
    let state = TempDir::new("pi-state");
    let run = install(&state.0, &[from.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report = run.json();
    let dir = state.0.join("pairing-identity");
    assert_eq!(report["result"], "installed");
    assert_eq!(report["dir"], dir.to_str().unwrap());
    assert_eq!(
        report["certificate"]["subject"],
        "CN=handoff simulated pairing client"
    );
    assert_eq!(
        report["certificate"]["issuer"],
        "CN=handoff simulated pairing authority"
    );
    assert_eq!(report["certificate"]["expired"], false);
    assert_no_key(&run, &from.join("client-key.pem"));

    assert_eq!(
        listing(&state.0),
        ["pairing-identity"],
        "no staging left behind"
    );
    assert_eq!(
        listing(&dir),
        ["authority-ca.pem", "client-cert.pem", "client-key.pem"]
    );
    assert_eq!(mode(&dir), 0o700);
    for name in NAMES {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    assert!(same_files(&from, &dir), "the content is what was given");
    PairingIdentity::load(&dir).expect("claim can read it");

    // `show` says the same, and the fingerprint is the certificate's.
    let shown = show(&state.0);
    assert_eq!(shown["dir"], dir.to_str().unwrap());
    assert_eq!(shown["certificate"], report["certificate"]);
    assert_eq!(
        shown["authorities"][0]["subject"],
        "CN=handoff simulated pairing authority"
    );
    let fp = shown["certificate"]["sha256"].as_str().unwrap();
    assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
    let (_other, other_from) = sim_identity("pi-sim-other");
    let other_state = TempDir::new("pi-state-other");
    assert_eq!(
        install(&other_state.0, &[other_from.to_str().unwrap()]).code,
        Some(0)
    );
    assert_ne!(
        show(&other_state.0)["certificate"]["sha256"],
        fp,
        "another certificate"
    );

    // The same files again: nothing to do.
    let again = install(&state.0, &[from.to_str().unwrap(), "--json"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.json()["result"], "unchanged");
    assert_eq!(listing(&state.0), ["pairing-identity"]);

    // The same files opened to others: rewritten private, no --force.
    let key = dir.join("client-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let again = install(&state.0, &[from.to_str().unwrap(), "--json"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.json()["result"], "replaced");
    assert_eq!(mode(&key), 0o600);
    PairingIdentity::load(&dir).expect("usable again");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_and_nothing_written() {
    let (_sim, from) = sim_identity("pi-mismatch");
    let (_other, other) = sim_identity("pi-mismatch-other");
    let bad = copy(&from, "pi-mismatch-bad");
    std::fs::copy(other.join("client-key.pem"), bad.0.join("client-key.pem")).unwrap();
    let state = TempDir::new("pi-mismatch-state");
    let run = install(&state.0, &[bad.0.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stderr.contains("do not belong together"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("client-key.pem"), "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert_no_key(&run, &bad.0.join("client-key.pem"));
    assert!(
        listing(&state.0).is_empty(),
        "nothing written: {:?}",
        listing(&state.0)
    );

    // A certificate the CA did not issue: refused too.
    let bad = copy(&from, "pi-mismatch-ca");
    std::fs::copy(
        other.join("authority-ca.pem"),
        bad.0.join("authority-ca.pem"),
    )
    .unwrap();
    let run = install(&state.0, &[bad.0.to_str().unwrap()]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("was not issued by the CA in"),
        "{}",
        run.stderr
    );
    assert!(listing(&state.0).is_empty());
}

#[test]
fn a_missing_file_is_named() {
    let (_sim, from) = sim_identity("pi-missing");
    let state = TempDir::new("pi-missing-state");
    for name in NAMES {
        let partial = copy(&from, "pi-missing-partial");
        std::fs::remove_file(partial.0.join(name)).unwrap();
        let run = install(&state.0, &[partial.0.to_str().unwrap()]);
        assert_eq!(run.code, Some(1), "{name}: {}", run.stdout);
        assert!(
            run.stderr.contains(&format!("{name} is missing")),
            "{name}: {}",
            run.stderr
        );
        assert!(listing(&state.0).is_empty());
    }
    // The usual other names are accepted.
    let renamed = TempDir::new("pi-renamed");
    for (from_name, to_name) in NAMES.iter().zip(["key.pem", "cert.pem", "ca.pem"]) {
        std::fs::copy(from.join(from_name), renamed.0.join(to_name)).unwrap();
    }
    let run = install(&state.0, &[renamed.0.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(same_files(&from, &state.0.join("pairing-identity")));
}

#[test]
fn an_installed_identity_is_replaced_only_with_force_and_kept() {
    let (_a, first) = sim_identity("pi-force-a");
    let (_b, second) = sim_identity("pi-force-b");
    let state = TempDir::new("pi-force-state");
    let dir = state.0.join("pairing-identity");
    assert_eq!(install(&state.0, &[first.to_str().unwrap()]).code, Some(0));

    let run = install(&state.0, &[second.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert!(
        same_files(&first, &dir),
        "the installed identity is untouched"
    );
    assert_eq!(listing(&state.0), ["pairing-identity"]);

    let run = install(&state.0, &[second.to_str().unwrap(), "--force", "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["result"], "replaced");
    let backup = PathBuf::from(report["backup"].as_str().unwrap());
    assert_eq!(backup.parent(), Some(state.0.as_path()));
    assert!(
        backup
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("pairing-identity.bak-"),
        "{}",
        backup.display()
    );
    assert!(same_files(&first, &backup), "the old one is kept");
    assert_eq!(mode(&backup), 0o700);
    assert!(same_files(&second, &dir), "the new one is in place");
    assert_eq!(listing(&state.0).len(), 2, "{:?}", listing(&state.0));
}

#[test]
fn an_expired_certificate_is_refused() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::new()).unwrap();
    client.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    client.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(35);
    let issuer = Issuer::new(ca, ca_key);
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();
    let dir = TempDir::new("pi-expired");
    std::fs::write(dir.0.join("client-key.pem"), client_key.serialize_pem()).unwrap();
    std::fs::write(dir.0.join("client-cert.pem"), client_cert.pem()).unwrap();
    std::fs::write(dir.0.join("authority-ca.pem"), ca_cert.pem()).unwrap();

    let state = TempDir::new("pi-expired-state");
    let run = install(&state.0, &[dir.0.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stderr.contains("client-cert.pem expired on"),
        "{}",
        run.stderr
    );
    assert!(listing(&state.0).is_empty());
}

#[test]
fn the_identity_pylutron_caseta_carries_is_installed_from_its_package() {
    let python = python_with(PYLUTRON);
    let state = TempDir::new("pi-pylutron");
    let run = install(
        &state.0,
        &[
            "--from-pylutron-caseta",
            "--python",
            python.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report = run.json();
    let dir = state.0.join("pairing-identity");
    assert_eq!(report["result"], "installed");
    assert!(
        report["source"]
            .as_str()
            .unwrap()
            .starts_with("pylutron-caseta 0.30.1 in "),
        "{report}"
    );
    assert!(
        report["certificate"]["subject"]
            .as_str()
            .unwrap()
            .contains("CN=Caseta Application")
    );
    assert_eq!(report["certificate"]["sha256"], PYLUTRON_CERT_SHA256);
    assert_no_key(&run, &dir.join("client-key.pem"));
    assert_eq!(mode(&dir), 0o700);
    for name in NAMES {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    PairingIdentity::load(&dir).expect("claim can read it");

    // Both roots it trusts on a pairing port: the Caséta CA, and
    // lutron-root for RadioRA 3.
    let shown = show(&state.0);
    let subjects: Vec<&str> = shown["authorities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects[0].contains("Caseta Local Access Protocol Cert Authority"),
        "{subjects:?}"
    );
    assert!(subjects[1].contains("CN=lutron-root"), "{subjects:?}");
}

#[test]
fn a_python_without_pylutron_caseta_is_named_and_nothing_written() {
    // The system's python3, with neither site-packages nor the user's:
    // it cannot have the package.
    let bin = TempDir::new("pi-nopylutron-bin");
    let python = bin.0.join("python-bare");
    std::fs::write(&python, "#!/bin/sh\nexec python3 -I -S \"$@\"\n").unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = TempDir::new("pi-nopylutron");
    let run = install(
        &state.0,
        &[
            "--from-pylutron-caseta",
            "--python",
            python.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stderr.contains("has no pylutron-caseta package"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(listing(&state.0).is_empty());

    let missing = bin.0.join("no-such-python");
    let run = install(
        &state.0,
        &[
            "--from-pylutron-caseta",
            "--python",
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    assert!(listing(&state.0).is_empty());
}
