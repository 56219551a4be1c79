//! Interop with python-zeroconf, an mDNS implementation nobody here wrote
//! (the one Home Assistant uses to find these processors): it must see what
//! `handoff sim` advertises, and handoff must see what it publishes.
//!
//! Each test first makes sure the pinned Python packages are installed
//! (outside the namespace: pip needs the registry), then runs its body in a
//! private network, as `lan_test!` does. The Python side lives in
//! `tests/interop/`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::python::python_with;
use common::{Sim, handoff, in_private_lan};
use serde_json::{Value, json};

/// python-zeroconf and its one dependency, pinned.
const ZEROCONF: &[&str] = &["zeroconf==0.154.0", "ifaddr==0.2.0"];

/// `python tests/interop/NAME`, leaving no `__pycache__` in the source tree.
fn script(python: &Path, name: &str) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/interop")
            .join(name),
    )
    .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// Browses `types` with zeroconf until `expect` instances are resolved (or
/// 15 s pass) and returns what it resolved.
fn zeroconf_browse(python: &Path, types: &[&str], expect: usize) -> Vec<Value> {
    let mut cmd = script(python, "zeroconf_browse.py");
    for ty in types {
        cmd.args(["--type", ty]);
    }
    let child = cmd
        .args(["--expect", &expect.to_string(), "--timeout", "15"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the zeroconf browser");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(40)) {
        Ok(out) => out.expect("wait for the zeroconf browser"),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("the zeroconf browser did not finish within 40 s");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "zeroconf browser failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("zeroconf browser printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// A service published by zeroconf. Dropping it kills the publisher.
struct Published {
    child: Child,
}

impl Published {
    /// Starts `zeroconf_publish.py ARGS…` and waits until the service is
    /// registered (probed and announced).
    fn start(python: &Path, args: &[&str]) -> Published {
        let mut child = script(python, "zeroconf_publish.py")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the zeroconf publisher");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut published = Published { child };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.starts_with("registered ") => published,
            Ok(line) => panic!("zeroconf publisher said {line:?}, not 'registered …'"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("zeroconf publisher did not register within 20 s")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = published.child.wait().unwrap();
                panic!(
                    "zeroconf publisher exited before registering ({status}); its stderr is above"
                );
            }
        }
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one processor `discover --json` must find, or a panic showing all.
fn discover_one() -> Value {
    let run = handoff(&["discover", "--json", "--timeout", "3s"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let found = run.json();
    let list = found.as_array().unwrap();
    assert_eq!(list.len(), 1, "{found:#}\n{}", run.stderr);
    list[0].clone()
}

/// DEVCLASS values the protocol reference lists for each SYSTYPE: checked
/// independently of the simulator's manifest, which could be wrong in the
/// same way as its advertisement.
fn reference_devclasses(systype: &str) -> &'static [&'static str] {
    match systype {
        "RadioRa3Processor" => &["081B0101"],
        "HWQSProcessor" => &["08110201", "08180101"],
        "SmartBridge" => &["08040000", "08040100", "08050000", "08050100"],
        other => panic!("SYSTYPE {other} is not one the simulator should send"),
    }
}

#[test]
fn zeroconf_sees_the_simulators_services_with_the_right_txt() {
    let python = python_with(ZEROCONF);
    in_private_lan(
        "zeroconf_sees_the_simulators_services_with_the_right_txt",
        || {
            let sim = Sim::start(&[
                "--count",
                "3",
                "--system-type",
                "ra3,qsx,caseta",
                "--no-probe",
                "--seed",
                "91",
            ]);
            let seen = zeroconf_browse(&python, &["_lutron._tcp.local."], 3);
            assert_eq!(seen.len(), 3, "zeroconf saw {seen:#?}");
            let systypes: BTreeSet<&str> = sim
                .manifest
                .iter()
                .map(|p| p["system_type"].as_str().unwrap())
                .collect();
            assert_eq!(
                systypes,
                BTreeSet::from(["HWQSProcessor", "RadioRa3Processor", "SmartBridge"])
            );
            for p in &sim.manifest {
                let id = p["id"].as_str().unwrap();
                let host = format!("Lutron-{id}.local.");
                let s = seen
                    .iter()
                    .find(|s| s["server"] == host.as_str())
                    .unwrap_or_else(|| panic!("zeroconf did not see {host}: {seen:#?}"));
                assert_eq!(
                    s["name"],
                    format!("{}._lutron._tcp.local.", p["instance"].as_str().unwrap())
                );
                assert_eq!(s["type"], "_lutron._tcp.local.");
                assert_eq!(s["port"], 22);
                assert_eq!(s["addresses"], p["addresses"]);
                // The id is the serial in 8 lowercase hex digits.
                assert_eq!(id, format!("{:08x}", p["serial"].as_u64().unwrap()));

                let systype = p["system_type"].as_str().unwrap();
                let mut want = BTreeMap::from([
                    ("MACADDR", p["mac"].clone()),
                    ("CODEVER", p["firmware"].clone()),
                    ("DEVCLASS", p["devclass"].clone()),
                    ("FW_STATUS", p["fw_status"].clone()),
                    ("NW_STATUS", p["nw_status"].clone()),
                    ("ST_STATUS", p["st_status"].clone()),
                    ("SYSTYPE", p["system_type"].clone()),
                ]);
                if systype == "HWQSProcessor" {
                    want.insert("SERNUM", p["serial"].to_string().into());
                    want.insert("CLAIM_STATUS", p["claim_status"].clone());
                }
                let want: BTreeMap<String, Value> =
                    want.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                let got: BTreeMap<String, Value> =
                    serde_json::from_value(s["properties"].clone()).unwrap();
                assert_eq!(got, want, "TXT of {host}");
                assert!(
                    got.values()
                        .all(|v| v.as_str().is_some_and(|v| !v.is_empty())),
                    "every key of {host} has a non-empty UTF-8 value: {got:#?}"
                );
                // One string per key, each `key=value`: no duplicates, no
                // bare keys, nothing the decoded view would hide.
                let raw: Vec<&str> = s["txt"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap())
                    .collect();
                let mut from_props: Vec<String> = got
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                    .collect();
                let mut raw_sorted: Vec<String> = raw.iter().map(|t| t.to_string()).collect();
                from_props.sort();
                raw_sorted.sort();
                assert_eq!(raw_sorted, from_props, "raw TXT strings of {host}");

                // Facts checked against the protocol reference, not the manifest.
                let mac = got["MACADDR"].as_str().unwrap();
                assert!(
                    mac.len() == 17
                        && mac.split(':').count() == 6
                        && mac
                            .split(':')
                            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
                        && mac == mac.to_lowercase(),
                    "MACADDR {mac} is not aa:bb:cc:dd:ee:ff"
                );
                let devclass = got["DEVCLASS"].as_str().unwrap();
                assert!(
                    reference_devclasses(systype).contains(&devclass),
                    "DEVCLASS {devclass} is not one the reference lists for {systype}"
                );
            }
        },
    );
}

/// A HomeWorks QSX processor as real ones advertise it (protocol reference
/// §1), at 127.0.2.1.
const QSX_TXT: &[&str] = &[
    "--txt",
    "MACADDR=a0:f6:fd:12:34:56",
    "--txt",
    "CODEVER=26.00.14f000",
    "--txt",
    "DEVCLASS=08110201",
    "--txt",
    "FW_STATUS=1:NoUpdate",
    "--txt",
    "NW_STATUS=11:InternetWorking",
    "--txt",
    "ST_STATUS=good",
    "--txt",
    "SYSTYPE=HWQSProcessor",
    "--txt",
    "SERNUM=37152423",
    "--txt",
    "CLAIM_STATUS=Claimed",
];

/// Publishes [`QSX_TXT`] as `Lutron Status` on `Lutron-0236e6a7.local.`.
fn publish_qsx(python: &Path) -> Published {
    let mut args = vec![
        "--type",
        "_lutron._tcp.local.",
        "--name",
        "Lutron Status",
        "--server",
        "Lutron-0236e6a7.local.",
        "--port",
        "22",
        "--address",
        "127.0.2.1",
    ];
    args.extend_from_slice(QSX_TXT);
    Published::start(python, &args)
}

/// What `discover --json` must say about [`publish_qsx`]'s processor.
fn qsx_json() -> Value {
    json!({
        "id": "0236e6a7",
        "serial": 37152423,
        "mac": "a0:f6:fd:12:34:56",
        "host": "Lutron-0236e6a7.local.",
        "addresses": ["127.0.2.1"],
        "system_type": "HWQSProcessor",
        "product": "HomeWorks QSX Processor",
        "firmware": "26.00.14f000",
        "devclass": "08110201",
        "instance": "Lutron Status",
        "service_type": "_lutron._tcp.local.",
        "port": 22,
        "fw_status": "1:NoUpdate",
        "nw_status": "11:InternetWorking",
        "st_status": "good",
        "claim_status": "Claimed",
        "warnings": [],
    })
}

#[test]
fn handoff_discovers_services_that_zeroconf_publishes() {
    let python = python_with(ZEROCONF);
    in_private_lan("handoff_discovers_services_that_zeroconf_publishes", || {
        let _published = publish_qsx(&python);
        let run = handoff(&["discover", "--json", "--timeout", "3s"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json(), json!([qsx_json()]), "{}", run.stderr);
    });
}

#[test]
fn host_query_reads_a_zeroconf_responders_unicast_answer() {
    // `--host` parses DNS itself (not through mdns-sd): a legacy unicast
    // query from an ephemeral port, which the responder must answer
    // directly, echoing the query id (RFC 6762 §6.7).
    let python = python_with(ZEROCONF);
    in_private_lan(
        "host_query_reads_a_zeroconf_responders_unicast_answer",
        || {
            let _published = publish_qsx(&python);
            let run = handoff(&[
                "discover",
                "--json",
                "--host",
                "127.0.2.1",
                "--timeout",
                "3s",
            ]);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            assert_eq!(run.json(), json!([qsx_json()]), "{}", run.stderr);
        },
    );
}

#[test]
fn handoff_keeps_a_zeroconf_service_with_broken_txt_and_warns() {
    let python = python_with(ZEROCONF);
    in_private_lan(
        "handoff_keeps_a_zeroconf_service_with_broken_txt_and_warns",
        || {
            // 240 bytes: "ST_STATUS=" plus this fits a TXT string (255).
            let long_status = format!("ST_STATUS={}", "x".repeat(240));
            let _published = Published::start(
                &python,
                &[
                    "--type",
                    "_lutron._tcp.local.",
                    "--name",
                    "Lutron Status",
                    "--server",
                    "Lutron-0236e6a7.local.",
                    "--address",
                    "127.0.2.1",
                    "--txt",
                    "MACADDR=zz:zz",
                    "--txt",
                    "FW_STATUS=1:NoUpdate",
                    "--txt",
                    "NW_STATUS=11:InternetWorking",
                    "--txt",
                    &long_status,
                    "--txt",
                    "SYSTYPE=RadioRa3Processor",
                    // Latin-1 "é" and a lone continuation byte: not UTF-8.
                    "--txt-hex",
                    "CODEVER=3233e92e3036802e3238",
                    // DEVCLASS: missing.
                ],
            );
            let run = handoff(&["discover", "--json", "--timeout", "3s"]);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            let found = run.json();
            assert_eq!(found.as_array().unwrap().len(), 1, "{found:#}");
            let p = &found[0];
            // Identity from the host name; the broken fields are dropped,
            // the good ones kept.
            assert_eq!(p["id"], "0236e6a7");
            assert_eq!(p["serial"], 37152423);
            assert_eq!(p["host"], "Lutron-0236e6a7.local.");
            assert_eq!(p["addresses"], json!(["127.0.2.1"]));
            assert_eq!(p["mac"], Value::Null);
            assert_eq!(p["firmware"], Value::Null);
            assert_eq!(p["st_status"], Value::Null);
            assert_eq!(p["devclass"], Value::Null);
            assert_eq!(p["fw_status"], "1:NoUpdate");
            assert_eq!(p["nw_status"], "11:InternetWorking");
            assert_eq!(p["system_type"], "RadioRa3Processor");
            assert_eq!(p["product"], "RadioRA 3 Processor");

            let warnings: Vec<&str> = p["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap())
                .collect();
            assert_eq!(warnings.len(), 3, "{warnings:#?}");
            assert!(
                warnings
                    .iter()
                    .any(|w| w.starts_with("MACADDR: 'zz:zz' is not a MAC address")),
                "{warnings:#?}"
            );
            assert!(
                warnings.contains(&"CODEVER is not UTF-8; ignored"),
                "{warnings:#?}"
            );
            assert!(
                warnings.contains(&"ST_STATUS is 240 bytes long (at most 64 expected); ignored"),
                "{warnings:#?}"
            );
            // People see them too, with the processor named.
            for w in &warnings {
                assert!(
                    run.stderr
                        .contains(&format!("warning: processor 0236e6a7 (no MAC): {w}")),
                    "{}",
                    run.stderr
                );
            }
        },
    );
}

#[test]
fn handoff_finds_a_legacy_leap_service() {
    let python = python_with(ZEROCONF);
    in_private_lan("handoff_finds_a_legacy_leap_service", || {
        // An older Caséta Smart Bridge Pro: `_leap._tcp` only.
        let _published = Published::start(
            &python,
            &[
                "--type",
                "_leap._tcp.local.",
                "--name",
                "Lutron Status",
                "--server",
                "Lutron-01a2b3c4.local.",
                "--address",
                "127.0.3.1",
                "--txt",
                "MACADDR=a0:f6:fd:01:a2:b3",
                "--txt",
                "CODEVER=08.25.17f000",
                "--txt",
                "DEVCLASS=08050100",
                "--txt",
                "FW_STATUS=1:NoUpdate",
                "--txt",
                "NW_STATUS=11:InternetWorking",
                "--txt",
                "ST_STATUS=good",
                "--txt",
                "SYSTYPE=SmartBridge",
            ],
        );
        let p = discover_one();
        assert_eq!(p["service_type"], "_leap._tcp.local.");
        assert_eq!(p["instance"], "Lutron Status");
        assert_eq!(p["id"], "01a2b3c4");
        assert_eq!(p["serial"], 0x01a2_b3c4);
        assert_eq!(p["mac"], "a0:f6:fd:01:a2:b3");
        assert_eq!(p["addresses"], json!(["127.0.3.1"]));
        assert_eq!(p["system_type"], "SmartBridge");
        assert_eq!(p["product"], "Caséta Smart Bridge Pro");
        assert_eq!(p["firmware"], "08.25.17f000");
        assert_eq!(p["devclass"], "08050100");
        assert_eq!(p["warnings"], json!([]));
    });
}

#[test]
fn sim_renamed_by_a_zeroconf_processor_writes_its_new_name_to_the_manifest() {
    let python = python_with(ZEROCONF);
    in_private_lan(
        "sim_renamed_by_a_zeroconf_processor_writes_its_new_name_to_the_manifest",
        || {
            // A real processor holds "Lutron Status"; a simulated one that
            // asks for the same name (with probing, as real ones do) meets
            // zeroconf's defence and must take "Lutron Status (2)".
            let _published = publish_qsx(&python);
            let sim = Sim::start(&["--seed", "93", "--instance-name", "Lutron Status"]);
            let id = sim.ids()[0].clone();
            assert_eq!(
                sim.manifest[0]["instance"], "Lutron Status (2)",
                "{:#?}",
                sim.manifest
            );
            let seen = zeroconf_browse(&python, &["_lutron._tcp.local."], 2);
            let names: BTreeMap<&str, &str> = seen
                .iter()
                .map(|s| (s["server"].as_str().unwrap(), s["name"].as_str().unwrap()))
                .collect();
            let sim_host = format!("Lutron-{id}.local.");
            assert_eq!(
                names,
                BTreeMap::from([
                    (
                        "Lutron-0236e6a7.local.",
                        "Lutron Status._lutron._tcp.local."
                    ),
                    (sim_host.as_str(), "Lutron Status (2)._lutron._tcp.local."),
                ])
            );
        },
    );
}
