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

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
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
/// returns what it printed. With `on_ready`, the script also turns a zone
/// on and then waits for a button event: `on_ready` runs when it says it
/// is waiting.
fn pylutron_pair(python: &Path, sim: &Sim, on_ready: Option<&dyn Fn()>) -> Value {
    let host = sim.manifest[0]["addresses"][0]
        .as_str()
        .expect("manifest address")
        .to_string();
    let out_dir = TempDir::new("pylutron");
    let mut command = Command::new(python);
    command
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/interop")
                .join("pylutron_pair.py"),
        )
        .arg(&host)
        .arg(common::sim_identity_dir(&sim.state_dir))
        .arg(&out_dir.0);
    if on_ready.is_some() {
        command.arg("--interact");
    }
    let mut child = command
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pylutron_pair.py");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let deadline = std::time::Instant::now() + SCRIPT_LIMIT;
    let kill = || {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    };
    if let Some(on_ready) = on_ready {
        match lines.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(line) if line.contains("\"ready\"") => on_ready(),
            other => {
                kill();
                let out = rx.recv().ok().and_then(Result::ok);
                let stderr = out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
                panic!("pylutron_pair.py never got ready ({other:?}):\n{stderr:?}");
            }
        }
    }
    let out = match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
        Ok(out) => out.expect("wait for pylutron_pair.py"),
        Err(_) => {
            kill();
            panic!("pylutron_pair.py did not finish within {SCRIPT_LIMIT:?}");
        }
    };
    // The reader ends at the script's end of output.
    let stdout: Vec<String> = lines.iter().collect();
    let stdout = stdout.join("\n");
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
/// processors) with the manifest's serial. Then that what it loaded is the
/// manifest's house, that turning a zone on comes back as a level event,
/// and that a keypad press made with `handoff sim press-keypad` reaches its
/// button callback. Returns what it loaded.
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
    let house = sim.manifest[0]["house"].clone();
    let pressed = &house["buttons"][0];
    let press_keypad = || {
        let run = common::handoff(&[
            "sim",
            "press-keypad",
            sim.manifest[0]["id"].as_str().unwrap(),
            &pressed["device"].to_string(),
            &pressed["number"].to_string(),
            "--state-dir",
            sim.state_dir.to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(0), "press-keypad: {}", run.stderr);
    };
    let loaded = pylutron_pair(&python, &sim, Some(&press_keypad));
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
    assert_eq!(
        devices_seen(&loaded),
        devices_expected(&house, system_type == "caseta"),
        "pylutron-caseta's devices are the manifest's house"
    );
    let buttons_seen: BTreeSet<(String, u64, String)> = loaded["buttons"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, b)| {
            (
                id.clone(),
                b["number"].as_u64().unwrap(),
                b["device"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let buttons_expected: BTreeSet<(String, u64, String)> = house["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].to_string(),
                b["number"].as_u64().unwrap(),
                b["device"].to_string(),
            )
        })
        .collect();
    assert_eq!(buttons_seen, buttons_expected);
    assert_eq!(loaded["zone_event"]["level"], 100, "{loaded:#}");
    let id = pressed["id"].to_string();
    assert_eq!(
        loaded["button_events"],
        serde_json::json!([[id, "Press"], [id, "Release"]]),
        "{loaded:#}"
    );
    loaded
}

/// `(id, serial, model, type)` of every device pylutron-caseta holds but
/// the processor.
fn devices_seen(loaded: &Value) -> BTreeSet<String> {
    loaded["devices"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(id, _)| id.as_str() != "1")
        .map(|(id, d)| format!("{id} {} {} {}", d["serial"], d["model"], d["type"]))
        .collect()
}

/// What pylutron-caseta should hold of a house: on a bridge every device
/// (`/device`); on a processor its keypads and Picos (found through their
/// control stations) and its zones, which it keeps as devices without
/// serial or model.
fn devices_expected(house: &Value, bridge: bool) -> BTreeSet<String> {
    let device = |d: &Value| format!("{} {} {} {}", d["id"], d["serial"], d["model"], d["type"]);
    if bridge {
        return house["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(device)
            .collect();
    }
    let keypads = house["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| handoff::sim::house::has_buttons(d["type"].as_str().unwrap()))
        .map(device);
    let zones = house["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| format!("{} null null {}", z["id"], z["type"]));
    keypads.chain(zones).collect()
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
