//! `handoff sim` keeps all its files under `STATE_DIR/sim/` and never
//! writes where a real pairing identity lives (`STATE_DIR/pairing-identity`,
//! what `pair`, `claim` and the daemon read), nor into a `sim/` directory it did
//! not make.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, handoff_bin, sim_identity_dir};
use handoff::identity::{PAIRING_IDENTITY_DIR, PairingAuthority, PairingIdentity};

/// Every file under `dir`, by path relative to it, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_owned();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Installs a valid pairing identity (made by another authority) at
/// `state/pairing-identity`, as a user would: 0700 directory, 0600 files.
fn install_identity(state: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let elsewhere = TempDir::new("issued");
    let issued = PairingAuthority::load_or_create(&elsewhere.0).expect("authority");
    let from = issued
        .export_pairing_identity(&elsewhere.0)
        .expect("export");
    let to = state.join(PAIRING_IDENTITY_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&to)
        .unwrap();
    for name in ["client-key.pem", "client-cert.pem", "authority-ca.pem"] {
        let bytes = std::fs::read(from.join(name)).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to.join(name))
            .unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
    }
    PairingIdentity::load(&to).expect("the installed identity is valid");
    snapshot(&to)
}

/// `handoff sim ARGS…` with HOME = `home` and no state directory in the
/// environment, so that it uses the default one under HOME.
fn spawn_sim(home: &Path, args: &[&str]) -> Child {
    Command::new(handoff_bin())
        .arg("sim")
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("STATE_DIRECTORY")
        .env_remove("HANDOFF_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn handoff sim")
}

/// Waits for `file` to appear while `child` runs; kills it either way.
fn wait_for_file(child: &mut Child, file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("handoff sim exited early: {status}");
        }
        assert!(Instant::now() < deadline, "handoff sim wrote no manifest");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most 20 s) for `child` to exit; its code and stderr.
fn wait_exit(mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("handoff sim kept running: it did not refuse");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

lan_test! {
    fn the_sim_with_the_default_state_dir_leaves_an_installed_identity_alone() {
        let home = TempDir::new("sim-home");
        let state = home.0.join(".local/state/handoff");
        let before = install_identity(&state);
        let manifest = home.path("manifest.json");
        let mut sim = spawn_sim(
            &home.0,
            &["--count", "1", "--no-probe", "--manifest", manifest.to_str().unwrap()],
        );
        wait_for_file(&mut sim, &manifest);
        let after = snapshot(&state.join(PAIRING_IDENTITY_DIR));
        let _ = sim.kill();
        let _ = sim.wait();
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "the installed identity's files changed"
        );
        assert!(before == after, "the simulator rewrote the installed pairing identity");

        // Its own identity is under sim/, and is another one.
        let own = PairingIdentity::load(&sim_identity_dir(&state)).expect("the sim's identity");
        let installed = PairingIdentity::load(&state.join(PAIRING_IDENTITY_DIR)).unwrap();
        assert_ne!(own.identity.certificate_pem, installed.identity.certificate_pem);
        // And nothing of the simulator's lies outside sim/ but the
        // installed identity.
        let mut top: Vec<String> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert_eq!(top, ["pairing-identity", "sim"]);
    }
}

lan_test! {
    fn the_sim_refuses_a_sim_directory_it_did_not_make_and_writes_nothing() {
        let home = TempDir::new("sim-foreign");
        let state = home.0.join("state");
        let foreign = state.join("sim");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "someone else's\n").unwrap();
        let before = snapshot(&state);
        let manifest = home.path("manifest.json");
        let sim = spawn_sim(
            &home.0,
            &[
                "--count", "1", "--no-probe",
                "--state-dir", state.to_str().unwrap(),
                "--manifest", manifest.to_str().unwrap(),
            ],
        );
        let (code, stderr) = wait_exit(sim);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(foreign.to_str().unwrap()), "names the directory: {stderr}");
        assert!(stderr.contains("did not make"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!manifest.exists());
        assert!(snapshot(&state) == before, "the simulator wrote into {}", state.display());
    }
}

lan_test! {
    fn the_sim_runs_again_on_its_own_state_dir() {
        // Its own marker makes the directory its own: a second run reuses
        // the authority and the exported identity.
        let home = TempDir::new("sim-again");
        let state = home.0.join("state");
        for round in 0..2 {
            let manifest = home.path(&format!("manifest-{round}.json"));
            let mut sim = spawn_sim(
                &home.0,
                &[
                    "--count", "1", "--no-probe",
                    "--state-dir", state.to_str().unwrap(),
                    "--manifest", manifest.to_str().unwrap(),
                ],
            );
            wait_for_file(&mut sim, &manifest);
            let _ = sim.kill();
            let _ = sim.wait();
        }
        PairingIdentity::load(&sim_identity_dir(&state)).expect("the sim's identity");
        assert!(!state.join(PAIRING_IDENTITY_DIR).exists(), "nothing at the real identity's place");
    }
}
