//! Interop with pylutron-caseta, the client Home Assistant pairs with: the
//! real library from PyPI, unmodified, must pair with `handoff sim` and
//! then let its `Smartbridge` connect with the issued certificate and load
//! the processor. Only its trust anchors and pairing identity are swapped,
//! at run time, for the simulator's exported ones (never a vendor key):
//! see `tests/interop/pylutron_pair.py`.
//!
//! As in `interop_zeroconf.rs`, the pinned packages are installed before
//! the body moves into its private network.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::python::python_with;
use common::{Sim, TempDir, in_private_lan};
use serde_json::Value;

/// pylutron-caseta, its dependencies, and ifaddr for the network check.
const PYLUTRON: &[&str] = &[
    "pylutron-caseta==0.30.1",
    "cryptography==50.0.2",
    "cffi==2.1.1",
    "pycparser==3.12",
    "orjson==3.13.0",
    "ifaddr==0.2.0",
];

/// Pairing waits for the press (300 ms here), makes an RSA key, and the
/// bridge loads a handful of URLs: well under this.
const SCRIPT_LIMIT: Duration = Duration::from_secs(60);

/// Runs `pylutron_pair.py` against the simulator's one processor and
/// returns what it printed.
fn pylutron_pair(python: &Path, sim: &Sim) -> Value {
    let host = sim.manifest[0]["addresses"][0]
        .as_str()
        .expect("manifest address")
        .to_string();
    let out_dir = TempDir::new("pylutron");
    let child = Command::new(python)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/interop")
                .join("pylutron_pair.py"),
        )
        .arg(&host)
        .arg(common::sim_identity_dir(&sim.state_dir))
        .arg(&out_dir.0)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pylutron_pair.py");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(SCRIPT_LIMIT) {
        Ok(out) => out.expect("wait for pylutron_pair.py"),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("pylutron_pair.py did not finish within {SCRIPT_LIMIT:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pylutron-caseta failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    for file in ["caseta.key", "caseta.crt", "caseta-bridge.crt"] {
        let text = std::fs::read_to_string(out_dir.path(file))
            .unwrap_or_else(|e| panic!("pylutron-caseta kept no {file}: {e}"));
        assert!(text.contains("-----BEGIN "), "{file} is no PEM: {text}");
    }
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("pylutron_pair.py printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// Pairs and connects with pylutron-caseta; checks the bridge is logged
/// in, the library logged no problem (a failed subscription, a message it
/// did not expect), and it holds the processor itself as device 1 (where Home Assistant
/// looks for it on Caséta and, by pylutron-caseta's own mapping, on
/// processors) with the manifest's serial. Returns what it loaded.
fn pylutron_loads_the_processor(system_type: &str, device_type: &str) -> Value {
    let sim = Sim::start(&[
        "--count",
        "1",
        "--system-type",
        system_type,
        "--auto-press",
        "300ms",
        "--no-probe",
    ]);
    let python = python_with(PYLUTRON);
    let loaded = pylutron_pair(&python, &sim);
    assert_eq!(loaded["is_connected"], true, "{loaded:#}");
    let serial = sim.manifest[0]["serial"].as_u64().expect("manifest serial");
    let device = &loaded["devices"]["1"];
    assert_eq!(device["serial"].as_u64(), Some(serial), "{loaded:#}");
    assert_eq!(device["type"], device_type, "{loaded:#}");
    assert!(device["model"].is_string(), "{loaded:#}");
    assert_eq!(
        loaded["problems"],
        serde_json::json!([]),
        "pylutron-caseta logged no warnings or errors"
    );
    assert!(
        loaded["leap_version"].as_f64().is_some(),
        "pairing pinged the main port: {loaded:#}"
    );
    loaded
}

#[test]
fn pylutron_caseta_pairs_with_a_caseta_bridge_and_loads_it() {
    python_with(PYLUTRON);
    in_private_lan(
        "pylutron_caseta_pairs_with_a_caseta_bridge_and_loads_it",
        || {
            let loaded = pylutron_loads_the_processor("caseta", "SmartBridge");
            assert!(
                loaded["areas"].as_object().is_some_and(|a| !a.is_empty()),
                "{loaded:#}"
            );
        },
    );
}

#[test]
fn pylutron_caseta_pairs_with_a_radiora3_processor_and_loads_it() {
    python_with(PYLUTRON);
    in_private_lan(
        "pylutron_caseta_pairs_with_a_radiora3_processor_and_loads_it",
        || {
            let loaded = pylutron_loads_the_processor("ra3", "RadioRa3Processor");
            // pylutron-caseta names the processor after the area it sits in.
            let area = loaded["devices"]["1"]["area"].as_str().unwrap_or_default();
            assert!(
                loaded["areas"].get(area).is_some(),
                "the processor's area is one of /area's: {loaded:#}"
            );
        },
    );
}

#[test]
fn pylutron_caseta_pairs_with_a_homeworks_qsx_processor_and_loads_it() {
    python_with(PYLUTRON);
    in_private_lan(
        "pylutron_caseta_pairs_with_a_homeworks_qsx_processor_and_loads_it",
        || {
            pylutron_loads_the_processor("qsx", "HWQSProcessor");
        },
    );
}
