//! Prometheus metrics, end to end: the daemon's (textfile and loopback
//! listener) and `cloud serve --metrics`'s, each exposition parsed by the
//! reference Python client's parser (pinned in the interop venv), every
//! metric present with its type and help, counters moving by exactly one
//! for one claim and one relayed event, and `handoff health --json`
//! agreeing with the gauges.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::python::python_with;
use common::{ChildGuard, Sim, TempDir, handoff, in_private_lan, wait_for_port};

/// The reference parser, pinned like the other interop packages.
const PARSER: &[&str] = &["prometheus-client==0.26.0"];

const CLOUD: &str = "127.0.0.1:4433";
const DAEMON_METRICS: &str = "127.0.0.1:9721";
const CLOUD_METRICS: &str = "127.0.0.1:9722";
const PORTAL: &str = "127.0.0.1:8080";

/// Every metric of the daemon, as the parser names its family, and type.
const DAEMON_FAMILIES: &[(&str, &str)] = &[
    ("handoff_processors", "gauge"),
    ("handoff_discovery_events", "counter"),
    ("handoff_liveness_reverifications", "counter"),
    ("handoff_claims", "counter"),
    ("handoff_takeovers", "counter"),
    ("handoff_relay_backlog_events", "gauge"),
    ("handoff_relay_oldest_unsent_seconds", "gauge"),
    ("handoff_relay_connected", "gauge"),
    ("handoff_relayed_events", "counter"),
    ("handoff_relay_reconnects", "counter"),
];

const CLOUD_FAMILIES: &[(&str, &str)] = &[
    ("handoff_cloud_events", "counter"),
    ("handoff_cloud_refusals", "counter"),
    ("handoff_cloud_batch_events", "histogram"),
    ("handoff_cloud_transaction_seconds", "histogram"),
    ("handoff_cloud_serialization_retries", "counter"),
    ("handoff_cloud_connected_daemons", "gauge"),
    ("handoff_cloud_tls_handshake_failures", "counter"),
    ("handoff_portal_request_seconds", "histogram"),
];

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `GET path` over plain HTTP/1.1: (status, body).
fn http_get(at: &str, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(at).unwrap_or_else(|e| panic!("connect {at}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {at}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    (status, body.to_owned())
}

fn scrape(at: &str) -> String {
    let (status, body) = http_get(at, "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The exposition through the reference parser; panics with its reason
/// when it does not parse cleanly.
fn parse(python: &Path, text: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/prom_parse.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Python parser");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the reference parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each family is there, with its type and a help text.
fn assert_declared(parsed: &Value, families: &[(&str, &str)], text: &str) {
    for (name, ty) in families {
        let f = &parsed[*name];
        assert_eq!(f["type"], *ty, "{name}: {f}\n{text}");
        assert!(
            f["help"].as_str().is_some_and(|h| h.len() > 10),
            "{name} has no help: {f}"
        );
    }
}

/// Every sample of every family.
fn samples(parsed: &Value) -> impl Iterator<Item = &Value> {
    parsed
        .as_object()
        .unwrap()
        .values()
        .flat_map(|f| f["samples"].as_array().unwrap())
}

/// The value of sample `sample` with exactly `labels`, if present.
fn value(parsed: &Value, sample: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(parsed)
        .find(|s| {
            let have = s[1].as_object().unwrap();
            s[0] == sample
                && have.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| have.get(*k) == Some(&Value::from(*v)))
        })
        .map(|s| s[2].as_f64().unwrap())
}

/// The sum of the samples named `sample`, whatever their labels.
fn sum(parsed: &Value, sample: &str) -> f64 {
    samples(parsed)
        .filter(|s| s[0] == sample)
        .map(|s| s[2].as_f64().unwrap())
        .sum()
}

fn health(run: &str) -> Option<Value> {
    let r = handoff(&["--runtime-dir", run, "health", "--json"]);
    (r.code == Some(0)).then(|| r.json())
}

fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `handoff ARGS` under umask 077, as the unit runs it.
fn spawn_with_umask_077(args: &[&str], config: &Path) -> ChildGuard {
    let child = Command::new("sh")
        .args([
            "-c",
            "umask 077 && exec \"$0\" \"$@\"",
            common::handoff_bin(),
        ])
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

#[test]
fn one_claim_and_one_relayed_event_move_each_counter_by_one_and_every_exposition_parses() {
    let python = python_with(PARSER);
    in_private_lan(
        "one_claim_and_one_relayed_event_move_each_counter_by_one_and_every_exposition_parses",
        || {
            let dir = TempDir::new("metrics");
            let sim = Sim::start(&[
                "--count",
                "3",
                "--system-type",
                "ra3,qsx,caseta",
                "--no-probe",
                "--auto-press",
                "0s",
            ]);
            let state = sim.state_dir.to_str().unwrap().to_owned();
            let run = dir.path("run");
            let run_s = run.to_str().unwrap().to_owned();
            let id = sim.manifest[0]["id"].as_str().unwrap().to_owned();
            let data = common::lake_place(&sim, &dir, true, &sim.state_dir.join("cloud-identity"));
            let cloud = Command::new(common::handoff_bin())
                .args(["cloud", "--data"])
                .arg(&data)
                .args([
                    "serve",
                    "--listen",
                    CLOUD,
                    "--metrics",
                    CLOUD_METRICS,
                    "--web",
                    PORTAL,
                    "--web-plain-http",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut cloud = ChildGuard(cloud);
            for a in [CLOUD, CLOUD_METRICS, PORTAL] {
                wait_for_port(addr(a));
            }

            let textfile = dir.path("node-exporter/handoff.prom");
            std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
            let config = dir.path("handoff.toml");
            std::fs::write(&config, format!(
                "pairing_identity = \"{}\"\n[cloud]\naddress = \"{CLOUD}\"\n\
                 [metrics]\ntextfile = \"{}\"\ntextfile_interval = \"1s\"\nlisten = \"{DAEMON_METRICS}\"\n",
                common::sim_identity_dir(&sim.state_dir).display(), textfile.display(),
            )).unwrap();
            let _daemon = spawn_with_umask_077(
                &[
                    "--state-dir",
                    &state,
                    "--runtime-dir",
                    &run_s,
                    "daemon",
                    "--liveness",
                    "6s",
                ],
                &config,
            );
            let h = wait_until("the daemon finds the 3 processors", 30, || {
                health(&run_s).filter(|h| h["processors"] == 3)
            });
            assert_eq!(h["relay"]["backlog"], 0, "{h}");

            // Every metric, typed and explained; the gauges say what health says.
            let text = scrape(DAEMON_METRICS);
            let before = parse(&python, &text);
            assert_declared(&before, DAEMON_FAMILIES, &text);
            assert_eq!(sum(&before, "handoff_processors"), 3.0, "{text}");
            for product in ["RadioRA 3", "HomeWorks", "Caséta"] {
                let found = before["handoff_processors"]["samples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| {
                        s[1]["product"]
                            .as_str()
                            .is_some_and(|p| p.contains(product))
                    });
                assert!(found, "no processor of product {product}: {text}");
            }
            assert_eq!(
                value(&before, "handoff_relay_backlog_events", &[]),
                Some(0.0),
                "{text}"
            );

            // One claim through the daemon, its event relayed and applied.
            let claim = handoff(&[
                "--state-dir",
                &state,
                "--runtime-dir",
                &run_s,
                "claim",
                &id,
                "--json",
            ]);
            assert_eq!(claim.code, Some(0), "{}", claim.stderr);
            assert_eq!(
                claim.json()["cloud"]["result"],
                "applied",
                "{}",
                claim.stdout
            );
            let text = scrape(DAEMON_METRICS);
            let after = parse(&python, &text);
            let moved = |sample: &str, labels: &[(&str, &str)]| {
                value(&after, sample, labels).unwrap_or(0.0)
                    - value(&before, sample, labels).unwrap_or(0.0)
            };
            let claimed = [("outcome", "claimed")];
            assert_eq!(moved("handoff_claims_total", &claimed), 1.0, "{text}");
            assert_eq!(
                sum(&after, "handoff_claims_total") - sum(&before, "handoff_claims_total"),
                1.0,
                "{text}"
            );
            let applied = [("outcome", "applied")];
            assert_eq!(
                moved("handoff_relayed_events_total", &applied),
                1.0,
                "{text}"
            );
            assert_eq!(
                sum(&after, "handoff_relayed_events_total")
                    - sum(&before, "handoff_relayed_events_total"),
                1.0,
                "{text}"
            );
            assert_eq!(sum(&after, "handoff_takeovers_total"), 0.0, "{text}");
            assert_eq!(
                value(&after, "handoff_relay_connected", &[]),
                Some(1.0),
                "{text}"
            );

            // health --json and the metrics: one source.
            let h = health(&run_s).unwrap();
            let text = scrape(DAEMON_METRICS);
            let now = parse(&python, &text);
            assert_eq!(
                sum(&now, "handoff_processors"),
                h["processors"].as_f64().unwrap(),
                "{h}\n{text}"
            );
            assert_eq!(
                value(&now, "handoff_relay_backlog_events", &[]),
                h["relay"]["backlog"].as_f64(),
                "{h}\n{text}"
            );

            // The textfile catches up within its interval, parses, and the
            // node exporter's user can read it although the umask is 077.
            let claims_now = value(&after, "handoff_claims_total", &claimed);
            let file = wait_until("the textfile shows the claim", 15, || {
                let text = std::fs::read_to_string(&textfile).ok()?;
                let parsed = parse(&python, &text);
                (value(&parsed, "handoff_claims_total", &claimed) == claims_now).then_some(parsed)
            });
            assert_declared(&file, DAEMON_FAMILIES, "(textfile)");
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&textfile).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644);
            let names: Vec<_> = std::fs::read_dir(textfile.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["handoff.prom"], "no temporary file left beside it");

            // The cloud: the same event once, one connected daemon.
            let (status, _) = http_get(PORTAL, "/sign-in");
            assert_eq!(status, 200);
            let (status, _) = http_get(PORTAL, "/no-such-page");
            assert_eq!(status, 404);
            // Not TLS at all: a handshake failure.
            let mut garbage = TcpStream::connect(CLOUD).unwrap();
            garbage
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let _ = garbage.read_to_end(&mut Vec::new());
            let text = wait_until("the cloud counts the failed handshake", 15, || {
                let text = scrape(CLOUD_METRICS);
                text.contains("handoff_cloud_tls_handshake_failures_total{")
                    .then_some(text)
            });
            let c = parse(&python, &text);
            assert_declared(&c, CLOUD_FAMILIES, &text);
            assert_eq!(sum(&c, "handoff_cloud_events_total"), 1.0, "{text}");
            let portal = |route, status| [("route", route), ("method", "GET"), ("status", status)];
            let (sign_in, unmatched) = (portal("/sign-in", "200"), portal("unmatched", "404"));
            for (sample, labels, want) in [
                ("handoff_cloud_events_total", &applied[..], 1.0),
                (
                    "handoff_cloud_tls_handshake_failures_total",
                    &[("reason", "protocol")],
                    1.0,
                ),
                ("handoff_cloud_batch_events_count", &[], 1.0),
                ("handoff_cloud_batch_events_sum", &[], 1.0),
                ("handoff_cloud_transaction_seconds_count", &[], 1.0),
                ("handoff_cloud_connected_daemons", &[], 1.0),
                ("handoff_cloud_serialization_retries_total", &[], 0.0),
                ("handoff_portal_request_seconds_count", &sign_in, 1.0),
                ("handoff_portal_request_seconds_count", &unmatched, 1.0),
            ] {
                assert_eq!(
                    value(&c, sample, labels),
                    Some(want),
                    "{sample} {labels:?}\n{text}"
                );
            }

            // The cloud goes away: a release waits in the backlog, the
            // relay reconnects, and health and the gauges still agree.
            let _ = cloud.0.kill();
            let _ = cloud.0.wait();
            let release = handoff(&[
                "--state-dir",
                &state,
                "--runtime-dir",
                &run_s,
                "release",
                &id,
                "--json",
                "--cloud-wait",
                "1s",
            ]);
            assert_eq!(release.code, Some(4), "{}", release.stderr);
            let reconnects = |p: &Value| value(p, "handoff_relay_reconnects_total", &[]).unwrap();
            let down = wait_until("the relay counts a reconnect", 30, || {
                let parsed = parse(&python, &scrape(DAEMON_METRICS));
                (reconnects(&parsed) > reconnects(&after)).then_some(parsed)
            });
            assert_eq!(value(&down, "handoff_relay_connected", &[]), Some(0.0));
            // The age is published when the relay's status changes (a retry).
            let h = wait_until("health shows the release's age", 30, || {
                health(&run_s).filter(|h| h["relay"]["oldest_unsent_ms"].as_u64() > Some(0))
            });
            let text = scrape(DAEMON_METRICS);
            let now = parse(&python, &text);
            assert_eq!(h["relay"]["backlog"], 1, "{h}");
            assert_eq!(
                value(&now, "handoff_relay_backlog_events", &[]),
                Some(1.0),
                "{text}"
            );
            assert!(
                h["relay"]["oldest_unsent_ms"]
                    .as_u64()
                    .is_some_and(|ms| ms > 0),
                "{h}"
            );
            assert!(
                value(&now, "handoff_relay_oldest_unsent_seconds", &[]).is_some_and(|s| s > 0.0),
                "{text}"
            );
        },
    );
}

lan_test! {
    fn a_metrics_listener_off_loopback_or_on_a_taken_port_stops_the_daemon_before_it_starts() {
        let dir = TempDir::new("metrics-refused");
        let (state, run) = (dir.path("state"), dir.path("run"));
        let daemon = |config: &str| {
            let path = dir.path("handoff.toml");
            std::fs::write(&path, config).unwrap();
            handoff(&["--state-dir", state.to_str().unwrap(), "--runtime-dir",
                run.to_str().unwrap(), "daemon", "--config", path.to_str().unwrap()])
        };
        let r = daemon("[metrics]\nlisten = \"0.0.0.0:9721\"\n");
        assert_ne!(r.code, Some(0));
        assert!(r.stderr.contains("metrics.listen") && r.stderr.contains("must be on loopback"),
            "{}", r.stderr);
        assert!(!run.join("handoff.sock").exists());

        let r = daemon("[metrics]\ntextfile = \"/tmp/handoff.txt\"\n");
        assert_ne!(r.code, Some(0));
        assert!(r.stderr.contains("must end in .prom"), "{}", r.stderr);

        let _taken = std::net::TcpListener::bind(DAEMON_METRICS).unwrap();
        let r = daemon(&format!("[metrics]\nlisten = \"{DAEMON_METRICS}\"\n"));
        assert_ne!(r.code, Some(0));
        assert!(r.stderr.contains(&format!("cannot listen for metrics on {DAEMON_METRICS}")),
            "{}", r.stderr);

        // The cloud too refuses a taken --metrics port, before serving.
        let r = handoff(&["cloud", "--data", dir.path("cloud").to_str().unwrap(), "serve",
            "--listen", CLOUD, "--metrics", DAEMON_METRICS]);
        assert_ne!(r.code, Some(0));
        assert!(r.stderr.contains(&format!("cannot listen for metrics on {DAEMON_METRICS}")),
            "{}", r.stderr);
        assert!(TcpStream::connect(CLOUD).is_err(), "the relay was not left listening");
    }
}

lan_test! {
    fn a_missing_textfile_directory_is_retried_and_the_daemon_keeps_running() {
        let dir = TempDir::new("metrics-textfile");
        let (state, run) = (dir.path("state"), dir.path("run"));
        let run_s = run.to_str().unwrap().to_owned();
        let textfile = dir.path("not-yet/handoff.prom");
        let config = dir.path("handoff.toml");
        std::fs::write(&config, format!(
            "[metrics]\ntextfile = \"{}\"\ntextfile_interval = \"1s\"\n", textfile.display()
        )).unwrap();
        let _daemon = spawn_with_umask_077(
            &["--state-dir", state.to_str().unwrap(), "--runtime-dir", &run_s, "daemon"],
            &config,
        );
        wait_until("the daemon answers", 30, || health(&run_s));
        assert!(!textfile.exists());
        std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
        let text = wait_until("the textfile appears once its directory exists", 15, || {
            std::fs::read_to_string(&textfile).ok()
        });
        // No relay configured: its metrics are declared, without samples.
        assert!(text.contains("# TYPE handoff_relay_backlog_events gauge\n"), "{text}");
        assert!(!text.contains("\nhandoff_relay_backlog_events "), "{text}");
        assert!(health(&run_s).is_some(), "the daemon still runs");
    }
}
