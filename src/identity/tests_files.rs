//! The credential store, private files, and the simulator's authority.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::tests::{authority, ec_key};
use super::*;
use crate::processor::Serial;

const SERIAL: Serial = Serial(0x0236_e6a7);

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn credential() -> Credential {
    let ca = authority();
    let key = ec_key();
    let certificate_pem =
        sign_client_csr(&key.csr_pem("handoff").expect("CSR"), &ca).expect("signed");
    Credential {
        identity: TlsIdentity {
            key,
            certificate_pem,
        },
        processor_ca_pem: ca.certificate_pem().to_owned(),
        server_identity: Some(ServerIdentity {
            public_key_der: ec_key().public_key_der(),
        }),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("listing")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_saved_credential_loads_back_from_private_files() {
    let state = tempfile::tempdir().expect("temp dir");
    let store = CredentialStore::new(state.path());
    let saved = credential();
    store.save(SERIAL, &saved).expect("save");

    let dir = store.dir(SERIAL);
    assert!(dir.ends_with("credentials/37152423"), "{}", dir.display());
    assert_eq!(mode(&state.path().join("credentials")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        names(&dir),
        [
            "cert.pem",
            "key.pem",
            "processor-ca.pem",
            "server-identity.pem"
        ]
    );
    for name in names(&dir) {
        assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
    }

    let loaded = store.load(SERIAL).expect("load");
    assert_eq!(
        loaded.identity.key.public_key_der(),
        saved.identity.key.public_key_der()
    );
    assert_eq!(
        loaded.identity.certificate_pem,
        saved.identity.certificate_pem
    );
    assert_eq!(loaded.processor_ca_pem, saved.processor_ca_pem);
    assert_eq!(loaded.server_identity, saved.server_identity);
    assert_eq!(store.serials().expect("list"), [SERIAL]);
}

#[test]
fn saving_again_replaces_and_leaves_no_temporary_file() {
    let state = tempfile::tempdir().expect("temp dir");
    let store = CredentialStore::new(state.path());
    store.save(SERIAL, &credential()).expect("first save");
    let mut second = credential();
    second.server_identity = None;
    store.save(SERIAL, &second).expect("second save");
    let dir = store.dir(SERIAL);
    assert_eq!(names(&dir), ["cert.pem", "key.pem", "processor-ca.pem"]);
    let loaded = store.load(SERIAL).expect("load");
    assert_eq!(
        loaded.identity.certificate_pem,
        second.identity.certificate_pem
    );
    assert_eq!(loaded.server_identity, None);
}

#[test]
fn loading_says_what_is_wrong_with_the_files() {
    let state = tempfile::tempdir().expect("temp dir");
    let store = CredentialStore::new(state.path());
    let err = store.load(SERIAL).expect_err("nothing saved");
    assert!(matches!(err, IdentityError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("handoff claim"), "{err}");

    store.save(SERIAL, &credential()).expect("save");
    let dir = store.dir(SERIAL);

    chmod(&dir.join("key.pem"), 0o644);
    let err = store.load(SERIAL).expect_err("world-readable key");
    assert!(
        matches!(err, IdentityError::Permissions { mode: 0o644, .. }),
        "{err}"
    );
    chmod(&dir.join("key.pem"), 0o600);

    chmod(&dir, 0o755);
    let err = store.load(SERIAL).expect_err("open directory");
    assert!(matches!(err, IdentityError::Permissions { .. }), "{err}");
    chmod(&dir, 0o700);

    files::write_private(&dir, "key.pem", b"not a key").expect("write");
    let err = store.load(SERIAL).expect_err("corrupt key");
    assert!(matches!(&err, IdentityError::Corrupt { path, .. } if path.ends_with("key.pem")));

    // A key that is fine but not the certificate's (a crash between files).
    files::write_private(&dir, "key.pem", ec_key().to_pem().as_bytes()).expect("write");
    let err = store.load(SERIAL).expect_err("mismatched key");
    assert!(matches!(&err, IdentityError::Corrupt { path, .. } if path.ends_with("cert.pem")));

    fs::remove_file(dir.join("processor-ca.pem")).expect("rm");
    let err = store.load(SERIAL).expect_err("missing CA");
    assert!(matches!(err, IdentityError::Missing { .. }), "{err}");
}

#[test]
fn remove_forgets_a_credential_once() {
    let state = tempfile::tempdir().expect("temp dir");
    let store = CredentialStore::new(state.path());
    store.save(SERIAL, &credential()).expect("save");
    store.save(Serial(7), &credential()).expect("save");
    assert!(store.remove(SERIAL).expect("remove"));
    assert!(!store.dir(SERIAL).exists());
    assert!(!store.remove(SERIAL).expect("remove again"));
    assert_eq!(store.serials().expect("list"), [Serial(7)]);
}

#[test]
fn exports_use_the_names_pylutron_caseta_and_home_assistant_read() {
    let out = tempfile::tempdir().expect("temp dir");
    let cred = credential();
    let py = out.path().join("pylutron");
    cred.export_pylutron_caseta(&py).expect("export");
    assert_eq!(
        names(&py),
        ["caseta-bridge.crt", "caseta.crt", "caseta.key"]
    );
    let ha = out.path().join("ha");
    cred.export_home_assistant(&ha, "192.168.1.20")
        .expect("export");
    assert_eq!(
        names(&ha),
        [
            "lutron_caseta-192.168.1.20-ca.pem",
            "lutron_caseta-192.168.1.20-cert.pem",
            "lutron_caseta-192.168.1.20-key.pem"
        ]
    );
    assert_eq!(mode(&py.join("caseta.key")), 0o600);
    assert_eq!(mode(&ha.join("lutron_caseta-192.168.1.20-key.pem")), 0o600);
    let key = fs::read_to_string(py.join("caseta.key")).expect("read");
    let back = PrivateKey::from_pem(&key).expect("a key");
    assert_eq!(back.public_key_der(), cred.identity.key.public_key_der());
    assert_eq!(
        fs::read_to_string(ha.join("lutron_caseta-192.168.1.20-ca.pem")).expect("read"),
        cred.processor_ca_pem
    );
}

#[test]
fn the_simulators_authority_is_made_once_and_reloaded() {
    let state = tempfile::tempdir().expect("temp dir");
    let first = PairingAuthority::load_or_create(state.path()).expect("create");
    let second = PairingAuthority::load_or_create(state.path()).expect("reload");
    assert_eq!(
        first.authority().certificate_pem(),
        second.authority().certificate_pem()
    );
    assert_eq!(
        first.client().certificate_pem,
        second.client().certificate_pem
    );
    let kept = state.path().join("sim/pairing-authority");
    assert_eq!(mode(&kept), 0o700);
    assert_eq!(mode(&kept.join("authority-key.pem")), 0o600);

    // The reloaded key still signs for the same authority.
    let server = second.issue_server_identity("sim").expect("server");
    check_signed_certificate(
        &server.key,
        &server.certificate_pem,
        first.authority().certificate_pem(),
    )
    .expect("issued by the same authority");

    fs::write(kept.join("authority-key.pem"), "garbage").expect("damage");
    let err = PairingAuthority::load_or_create(state.path()).expect_err("damaged");
    assert!(matches!(err, IdentityError::Corrupt { .. }), "{err}");
}

#[test]
fn the_exported_pairing_identity_is_what_a_client_reads() {
    let state = tempfile::tempdir().expect("temp dir");
    let authority = PairingAuthority::load_or_create(state.path()).expect("create");
    let dir = authority
        .export_pairing_identity(state.path())
        .expect("export");
    assert_eq!(dir, state.path().join(SIM_PAIRING_IDENTITY_DIR));
    assert_eq!(
        names(&dir),
        ["authority-ca.pem", "client-cert.pem", "client-key.pem"]
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("client-key.pem")), 0o600);

    let identity = PairingIdentity::load(&dir).expect("load");
    assert_eq!(
        identity.authority_ca_pem,
        authority.authority().certificate_pem()
    );
    assert_eq!(
        identity.identity.certificate_pem,
        authority.client().certificate_pem
    );

    let other = tempfile::tempdir().expect("temp dir");
    let err = PairingIdentity::load(other.path()).expect_err("nothing there");
    assert!(
        err.to_string().contains("handoff pairing-identity install"),
        "{err}"
    );
}

#[test]
fn the_simulator_adopts_its_own_earlier_directory_and_refuses_a_foreign_one() {
    // What an earlier handoff left: sim/pairing-authority and
    // sim/processors, no marker.
    let state = tempfile::tempdir().expect("temp dir");
    let first = PairingAuthority::load_or_create(state.path()).expect("create");
    fs::remove_file(state.path().join("sim/.handoff-sim")).expect("marker");
    let again = PairingAuthority::load_or_create(state.path()).expect("adopted");
    assert_eq!(
        first.authority().certificate_pem(),
        again.authority().certificate_pem()
    );
    assert!(state.path().join("sim/.handoff-sim").is_file());

    let foreign = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(foreign.path().join("sim/pairing-authority")).unwrap();
    fs::write(foreign.path().join("sim/key.pem"), "not ours").unwrap();
    let err = PairingAuthority::load_or_create(foreign.path()).expect_err("foreign");
    assert!(matches!(err, IdentityError::NotSimulators { .. }), "{err}");
    assert_eq!(
        names(&foreign.path().join("sim")),
        ["key.pem", "pairing-authority"]
    );
    assert!(names(&foreign.path().join("sim/pairing-authority")).is_empty());
}

/// The directory given to `pairing-identity install` does not exist, is a
/// file, or is the cloud bundle a site box also holds: each is said as
/// such, not as a missing client key.
#[test]
fn an_install_from_the_wrong_directory_says_what_it_is() {
    use super::install::IdentityPems;
    let dir = tempfile::tempdir().unwrap();
    let none = IdentityPems::read_dir(&dir.path().join("typo")).unwrap_err();
    assert!(
        matches!(none, IdentityError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{none}"
    );
    let file = dir.path().join("client-key.pem");
    fs::write(&file, "x").unwrap();
    let a_file = IdentityPems::read_dir(&file).unwrap_err();
    assert!(a_file.to_string().contains("is a file"), "{a_file}");
    let bundle = dir.path().join("cloud-identity");
    fs::create_dir(&bundle).unwrap();
    for name in [daemon::BUNDLE_KEY, daemon::BUNDLE_CERT, daemon::BUNDLE_CA] {
        fs::write(bundle.join(name), "x").unwrap();
    }
    let cloud = IdentityPems::read_dir(&bundle).unwrap_err();
    assert!(
        cloud.to_string().contains("is a cloud identity bundle"),
        "{cloud}"
    );
}
