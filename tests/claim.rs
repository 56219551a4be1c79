//! `handoff pair` and `handoff unpair` against `handoff sim`, each test on
//! its own private network (the homeowner claim in the cloud is
//! `tests/pair_claim.rs`).

mod common;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Run, Sim, TempDir, handoff, handoff_bin};
use handoff::claim::{ClaimError, ClaimOptions, Silent, Target};
use handoff::identity::{
    CredentialStore, KeyAlgorithm, PairingAuthority, PairingIdentity, PrivateKey,
};
use handoff::leap::{Communique, Connection, StatusCode};
use handoff::processor::Serial;
use handoff::tls;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn identity_dir(sim: &Sim) -> PathBuf {
    common::sim_identity_dir(&sim.state_dir)
}

/// `handoff --state-dir STATE pair ARGS… --pairing-identity (sim's)`.
fn claim(state: &Path, sim: &Sim, args: &[&str]) -> Run {
    let state = state.to_str().unwrap();
    let identity = identity_dir(sim);
    let mut all = vec!["--state-dir", state, "pair"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--pairing-identity", identity.to_str().unwrap()]);
    handoff(&all)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Nothing under the state directory's credential store.
fn assert_nothing_stored(state: &Path) {
    let store = state.join("credentials");
    let entries: Vec<_> = match std::fs::read_dir(&store) {
        Ok(dir) => dir.map(|e| e.unwrap().file_name()).collect(),
        Err(_) => Vec::new(),
    };
    assert!(entries.is_empty(), "stored something: {entries:?}");
}

fn address(p: &Value) -> &str {
    p["addresses"][0].as_str().unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Pings the main port with the stored credential, its key pinned.
fn ping_with_stored_credential(state: &Path, serial: u64, ip: IpAddr) -> StatusCode {
    let credential = CredentialStore::new(state)
        .load(Serial(serial as u32))
        .expect("stored credential loads");
    assert!(credential.server_identity.is_some(), "main port key pinned");
    let config = tls::main_client_config(&credential).unwrap();
    block_on(async {
        let tcp = TcpStream::connect((ip, 8081)).await.unwrap();
        let stream = TlsConnector::from(config)
            .connect(tls::processor_server_name(ip), tcp)
            .await
            .expect("pinned TLS connection");
        let mut conn = Connection::new(stream);
        conn.write_frame(&Communique::ping_request(Some("p".into())))
            .await
            .unwrap();
        let object = tokio::time::timeout(Duration::from_secs(10), conn.read_frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        Communique::from_object(object)
            .unwrap()
            .status()
            .unwrap()
            .clone()
    })
}

lan_test! {
    fn claims_by_id_and_keeps_private_files_that_match_the_manifest() {
        let sim = Sim::start(&["--count", "1", "--auto-press", "200ms", "--no-probe"]);
        let p = &sim.manifest[0];
        let state = TempDir::new("claim");
        let run = claim(&state.0, &sim, &[p["id"].as_str().unwrap(), "--json"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let out = run.json();
        assert_eq!(out["id"], p["id"]);
        assert_eq!(out["serial"], p["serial"]);
        assert_eq!(out["mac"], p["mac"]);
        assert_eq!(out["address"], p["addresses"][0]);
        // Pairing never touches the cloud: nothing is queued for it.
        assert_eq!(out.get("cloud"), None, "{out}");
        assert!(!state.0.join("outbox.redb").exists(), "pairing queued an event");
        // Loopback has no MAC: the anonymous DeviceUID goes out.
        assert_eq!(out["device_uid"], "000000000000");
        // The pinned CA's fingerprint, to compare with the processor's own.
        let ca = std::fs::read_to_string(
            sim.state_dir.join(format!("sim/processors/{}/ca-cert.pem", p["id"].as_str().unwrap())),
        )
        .unwrap();
        assert_eq!(out["ca_sha256"].as_str(), handoff::claim::ca_fingerprint(&ca).as_deref());
        assert_eq!(out["ca_sha256"].as_str().unwrap().len(), 32 * 3 - 1);

        let dir = PathBuf::from(out["credential_dir"].as_str().unwrap());
        assert_eq!(dir, state.0.join("credentials").join(p["serial"].to_string()));
        assert_eq!(mode(&state.0.join("credentials")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let files = out["files"].as_array().unwrap();
        assert_eq!(files.len(), 5);
        for f in files {
            assert_eq!(mode(Path::new(f.as_str().unwrap())), 0o600, "{f}");
        }
        // The key is RSA-2048 by default, as real clients send.
        let key = std::fs::read_to_string(dir.join("key.pem")).unwrap();
        let key = handoff::identity::PrivateKey::from_pem(&key).unwrap();
        assert_eq!(key.algorithm(), Some(handoff::identity::KeyAlgorithm::Rsa2048));

        let ip: IpAddr = address(p).parse().unwrap();
        let status = ping_with_stored_credential(&state.0, p["serial"].as_u64().unwrap(), ip);
        assert_eq!(status, StatusCode::OK);
    }
}

lan_test! {
    fn a_second_pairing_is_refused_until_unpair_and_then_works_again() {
        let sim = Sim::start(&["--count", "1", "--auto-press", "200ms", "--no-probe"]);
        let p = &sim.manifest[0];
        let id = p["id"].as_str().unwrap();
        let state = TempDir::new("claim-twice");
        let first = claim(&state.0, &sim, &[id, "--key", "ec"]);
        assert_eq!(first.code, Some(0), "{}", first.stderr);
        assert!(first.stdout.contains(&format!("paired with RadioRA 3 Processor {id}")), "{}", first.stdout);
        assert!(first.stdout.contains("the cloud was not told"), "{}", first.stdout);

        let again = claim(&state.0, &sim, &[id, "--key", "ec"]);
        assert_eq!(again.code, Some(1));
        assert!(again.stderr.contains("already paired"), "{}", again.stderr);
        assert!(again.stderr.contains(&format!("handoff unpair {id}")), "{}", again.stderr);

        // Unpaired by MAC: found through the claim record.
        let state_arg = state.0.to_str().unwrap();
        let mac = p["mac"].as_str().unwrap();
        let unpaired = handoff(&["--state-dir", state_arg, "unpair", mac, "--json"]);
        assert_eq!(unpaired.code, Some(0), "{}", unpaired.stderr);
        assert_eq!(unpaired.json()["id"], p["id"]);
        assert_nothing_stored(&state.0);
        let twice = handoff(&["--state-dir", state_arg, "unpair", id]);
        assert_eq!(twice.code, Some(1));
        assert!(twice.stderr.contains("not paired here"), "{}", twice.stderr);

        let after = claim(&state.0, &sim, &[id, "--key", "ec"]);
        assert_eq!(after.code, Some(0), "{}", after.stderr);
        assert!(state.0.join("credentials").join(p["serial"].to_string()).join("cert.pem").exists());
    }
}

lan_test! {
    fn export_dir_gets_the_files_pylutron_caseta_and_home_assistant_read() {
        let sim = Sim::start(&["--count", "1", "--auto-press", "200ms", "--no-probe"]);
        let p = &sim.manifest[0];
        let state = TempDir::new("claim-export");
        let export = state.path("export");
        let run = claim(&state.0, &sim, &[
            p["id"].as_str().unwrap(), "--key", "ec", "--json",
            "--export-dir", export.to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let dir = PathBuf::from(run.json()["credential_dir"].as_str().unwrap());
        let stored = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let exported = |name: &str| {
            let path = export.join(name);
            assert_eq!(mode(&path), 0o600, "{name}");
            std::fs::read_to_string(path).unwrap()
        };
        let ip = address(p);
        for (py, ha, ours) in [
            ("caseta.key", format!("lutron_caseta-{ip}-key.pem"), "key.pem"),
            ("caseta.crt", format!("lutron_caseta-{ip}-cert.pem"), "cert.pem"),
            ("caseta-bridge.crt", format!("lutron_caseta-{ip}-ca.pem"), "processor-ca.pem"),
        ] {
            assert_eq!(exported(py), stored(ours), "{py}");
            assert_eq!(exported(&ha), stored(ours), "{ha}");
        }
        assert_eq!(run.json()["exported"].as_array().unwrap().len(), 6);
    }
}

lan_test! {
    fn a_button_nobody_presses_ends_with_a_clear_error_and_nothing_stored() {
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let p = &sim.manifest[0];
        let state = TempDir::new("claim-nobody");
        let run = claim(&state.0, &sim, &[
            p["id"].as_str().unwrap(), "--key", "ec", "--button-timeout", "1s",
        ]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("nobody pressed the button"), "{}", run.stderr);
        assert!(run.stderr.contains("within 1 s"), "{}", run.stderr);
        assert!(run.stderr.contains(p["mac"].as_str().unwrap()), "names the MAC: {}", run.stderr);
        // Not a terminal: the countdown comes as plain lines.
        assert!(run.stderr.contains("Press the button on RadioRA 3 Processor"), "{}", run.stderr);
        assert_nothing_stored(&state.0);
    }
}

lan_test! {
    fn a_pairing_identity_from_elsewhere_is_reported_as_such_and_nothing_stored() {
        let sim = Sim::start(&["--count", "1", "--auto-press", "100ms", "--no-probe"]);
        let p = &sim.manifest[0];
        let id = p["id"].as_str().unwrap();
        let state = TempDir::new("claim-wrong-identity");
        let state_arg = state.0.to_str().unwrap();
        let elsewhere = TempDir::new("other-authority");
        let other = PairingAuthority::load_or_create(&elsewhere.0).unwrap();
        let other_dir = other.export_pairing_identity(&elsewhere.0).unwrap();

        // Another simulator's identity: its authority did not sign the
        // processor's certificate, so we refuse the processor.
        let run = handoff(&[
            "--state-dir", state_arg, "pair", id, "--key", "ec",
            "--pairing-identity", other_dir.to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("is --pairing-identity the right one"), "{}", run.stderr);
        assert!(run.stderr.contains("not from the authority"), "{}", run.stderr);
        assert_nothing_stored(&state.0);

        // Its client certificate, trusting the right authority: the
        // processor refuses us, with the alert real processors send.
        // (`--pairing-identity` cannot say this: the files must belong
        // together to load, so the library is driven directly.)
        let ours = PairingIdentity::load(&identity_dir(&sim)).unwrap();
        let mut stranger = PairingIdentity::load(&other_dir).unwrap();
        stranger.authority_ca_pem = ours.authority_ca_pem.clone();
        let mut options = ClaimOptions::new(Target::parse(id), state.0.clone());
        options.address = Some(address(p).parse().unwrap());
        options.key_algorithm = KeyAlgorithm::EcdsaP256;
        let err = block_on(handoff::claim::claim(&options, &stranger, &mut Silent))
            .expect_err("a stranger's certificate is refused");
        assert!(matches!(err, ClaimError::PairingIdentityRefused { .. }), "{err:?}");
        assert!(err.to_string().contains("refused our pairing identity (TLS bad certificate)"), "{err}");
        assert_nothing_stored(&state.0);

        // The right one gets in, through the same library call.
        let outcome = block_on(handoff::claim::claim(&options, &ours, &mut Silent)).unwrap();
        assert_eq!(outcome.id, id);
    }
}

lan_test! {
    fn a_processor_that_dies_while_we_wait_for_the_button_is_reported_and_nothing_stored() {
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let p = sim.manifest[0].clone();
        let state = TempDir::new("claim-vanish");
        let identity = identity_dir(&sim);
        let mut child = Command::new(handoff_bin())
            .args(["--state-dir", state.0.to_str().unwrap(), "pair"])
            .arg(p["id"].as_str().unwrap())
            .args(["--key", "ec", "--button-timeout", "60s", "--pairing-identity"])
            .arg(&identity)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.contains("Press the button") {
            assert!(Instant::now() < deadline, "no countdown: {seen}");
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("claim ended before the button wait: {seen}");
            }
            seen.push_str(&line);
        }
        let started = Instant::now();
        sim.kill();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        let status = child.wait().unwrap();
        assert!(started.elapsed() < Duration::from_secs(15), "noticed late");
        assert_eq!(status.code(), Some(1), "{seen}{rest}");
        assert!(rest.contains("went away during the claim"), "{rest}");
        assert!(rest.contains("nothing was stored"), "{rest}");
        assert_nothing_stored(&state.0);
    }
}

/// A claim of the one processor of a fleet started with `--fault FAULT`,
/// whose button presses itself: it must fail saying each of `says`, with
/// nothing stored.
fn refused_with_fault(fault: &str, says: &[&str]) {
    let sim = Sim::start(&[
        "--count",
        "1",
        "--auto-press",
        "100ms",
        "--no-probe",
        "--fault",
        fault,
    ]);
    let p = &sim.manifest[0];
    let state = TempDir::new("claim-fault");
    let run = claim(&state.0, &sim, &[p["id"].as_str().unwrap(), "--key", "ec"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for text in says {
        let text = text.replace("{mac}", p["mac"].as_str().unwrap());
        assert!(run.stderr.contains(&text), "{text}: {}", run.stderr);
    }
    assert_nothing_stored(&state.0);
}

lan_test! {
    /// Issue 15, attack 1: someone on the LAN answers on the pairing port
    /// with the shared pairing identity (so its certificate chains to the
    /// authority). The button is pressed at once, yet the TLS handshake
    /// fails first: no CSR goes out, nothing is stored.
    fn a_pairing_port_showing_the_pairing_identity_is_refused_before_any_csr() {
        refused_with_fault(
            "impostor-pairing",
            &["pairing identity's own certificate", "No request was sent"],
        );
    }
}

lan_test! {
    /// Issue 15, attack 1: a processor whose CA (and so its main port's
    /// chain) names another MAC than discovery saw is refused after the
    /// button, before anything is stored.
    fn a_processor_whose_certificate_names_another_mac_is_refused() {
        refused_with_fault("names-other-mac", &["MAC in its certificate", "{mac}"]);
    }
}

lan_test! {
    fn address_skips_discovery_and_still_checks_who_answers() {
        let sim = Sim::start(&["--count", "2", "--auto-press", "100ms", "--no-probe"]);
        let (a, b) = (&sim.manifest[0], &sim.manifest[1]);
        let state = TempDir::new("claim-address");

        // By address alone.
        let run = claim(&state.0, &sim, &[address(a), "--address", address(a), "--key", "ec", "--json"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json()["serial"], a["serial"]);
        assert_eq!(run.json()["mac"], a["mac"]);

        // b's id at a's address: the processor there says otherwise.
        let run = claim(&state.0, &sim, &[
            b["id"].as_str().unwrap(), "--address", address(a), "--key", "ec",
        ]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("refused"), "{}", run.stderr);
        assert!(run.stderr.contains("serial"), "{}", run.stderr);
        assert!(run.stderr.contains(b["id"].as_str().unwrap()), "{}", run.stderr);

        // b's MAC at a's address.
        let run = claim(&state.0, &sim, &[
            b["mac"].as_str().unwrap(), "--address", address(a), "--key", "ec",
        ]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("MAC"), "{}", run.stderr);
        // Only a's credential, from the first claim.
        let kept: Vec<_> = std::fs::read_dir(state.0.join("credentials"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(kept, vec![a["serial"].to_string()]);

        // b by id at its own address works.
        let run = claim(&state.0, &sim, &[
            b["id"].as_str().unwrap(), "--address", address(b), "--key", "ec", "--json",
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json()["serial"], b["serial"]);
    }
}

lan_test! {
    fn a_changed_main_port_key_is_reported_and_never_re_trusted() {
        let sim_state = TempDir::new("sim-kept");
        let args = [
            "--count", "1", "--auto-press", "100ms", "--no-probe", "--seed", "3",
            "--state-dir", sim_state.0.to_str().unwrap(),
        ];
        let sim = Sim::start(&args);
        let p = &sim.manifest[0].clone();
        let ip: IpAddr = address(p).parse().unwrap();
        let serial = Serial(p["serial"].as_u64().unwrap() as u32);
        let state = TempDir::new("claim-changed");
        let identity = PairingIdentity::load(&identity_dir(&sim)).unwrap();
        let mut options = ClaimOptions::new(Target::parse(p["id"].as_str().unwrap()), state.0.clone());
        options.key_algorithm = KeyAlgorithm::EcdsaP256;
        block_on(handoff::claim::claim(&options, &identity, &mut Silent)).unwrap();
        let seen = block_on(handoff::claim::verify_claimed(&state.0, serial, ip)).unwrap();
        assert_eq!(seen.serial, serial);

        // Pretend the processor showed another key at the claim: the one
        // it shows now no longer matches the pin.
        let pin_path = state.0.join("credentials").join(serial.0.to_string()).join("server-identity.pem");
        let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let other_pin = pem::encode(&pem::Pem::new("PUBLIC KEY", other.public_key_der()));
        std::fs::write(&pin_path, &other_pin).unwrap();
        let err = block_on(handoff::claim::verify_claimed(&state.0, serial, ip)).unwrap_err();
        assert!(matches!(err, ClaimError::IdentityChanged { .. }), "{err:?}");
        assert!(err.to_string().contains("different key"), "{err}");
        assert_eq!(std::fs::read_to_string(&pin_path).unwrap(), other_pin, "pin left alone");

        // A processor that reboots keeps its CA and key: the credential
        // still works after the simulator restarts on the same state.
        std::fs::write(&pin_path, pem::encode(&pem::Pem::new("PUBLIC KEY", seen.server.public_key_der.clone()))).unwrap();
        block_on(handoff::claim::verify_claimed(&state.0, serial, ip)).expect("the real pin works");
        sim.stop();
        let sim = Sim::start(&args);
        assert_eq!(sim.manifest[0]["serial"], p["serial"]);
        block_on(handoff::claim::verify_claimed(&state.0, serial, ip)).expect("still trusted after a reboot");

        // After a factory reset (a new CA), at the same address with the
        // same serial, it is not trusted.
        sim.stop();
        let kept = sim_state.0.join("sim/processors").join(p["id"].as_str().unwrap());
        assert!(kept.join("ca-cert.pem").exists(), "{kept:?}");
        std::fs::remove_dir_all(&kept).unwrap();
        let _sim = Sim::start(&args);
        let err = block_on(handoff::claim::verify_claimed(&state.0, serial, ip)).unwrap_err();
        assert!(matches!(err, ClaimError::IdentityChanged { .. }), "{err:?}");
    }
}

lan_test! {
    fn ctrl_c_while_waiting_for_the_button_cancels_with_nothing_stored() {
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let p = sim.manifest[0].clone();
        let state = TempDir::new("claim-cancel");
        let mut child = Command::new(handoff_bin())
            .args(["--state-dir", state.0.to_str().unwrap(), "pair"])
            .arg(p["id"].as_str().unwrap())
            .args(["--key", "ec", "--pairing-identity"])
            .arg(identity_dir(&sim))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        while !seen.contains("Press the button") {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("claim ended before the button wait: {seen}");
            }
            seen.push_str(&line);
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{seen}{rest}");
        assert!(rest.contains("cancelled: nothing was stored"), "{rest}");
        assert_nothing_stored(&state.0);
    }
}

lan_test! {
    /// A port that accepts TCP and then says nothing (what a path with a
    /// jumbo-frame hop does to a TLS handshake): the error says the
    /// handshake stalled and to check the MTU, not only "timed out".
    fn a_handshake_that_stalls_after_the_tcp_connect_says_to_check_the_mtu() {
        let sim = Sim::start(&["--no-probe"]);
        let state = TempDir::new("claim-stall");
        let listener = std::net::TcpListener::bind(("127.0.9.9", 8083)).unwrap();
        let held = std::thread::spawn(move || {
            // Accept and hold the connection open, never writing a byte.
            let (conn, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(15));
            drop(conn);
        });
        let run = claim(&state.0, &sim, &["127.0.9.9", "--address", "127.0.9.9", "--key", "ec"]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("TLS handshake stalled"), "{}", run.stderr);
        assert!(run.stderr.contains("MTU"), "{}", run.stderr);
        assert!(run.stderr.contains("port 8083"), "{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert_nothing_stored(&state.0);
        held.join().unwrap();
    }
}
