//! The daemon with a cloud: it runs the relay and owns the outbox, the
//! CLI's claim and release hand their events to it, `health` shows the
//! backlog, and an outage is ridden out.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{ChildGuard, Cloud, Sim, TempDir, handoff};

fn addr() -> SocketAddr {
    "127.0.0.1:4433".parse().unwrap()
}

fn health(run: &str) -> Option<Value> {
    let r = handoff(&["--runtime-dir", run, "health", "--json"]);
    (r.code == Some(0)).then(|| r.json())
}

lan_test! {
    fn the_daemon_relays_what_the_cli_hands_it_and_rides_out_an_outage() {
        let dir = TempDir::new("daemon-relay");
        let sim = Sim::start(&["--count", "1", "--no-probe", "--auto-press", "0s"]);
        let state = sim.state_dir.to_str().unwrap().to_owned();
        let run = dir.path("run");
        let run_s = run.to_str().unwrap().to_owned();
        let p = &sim.manifest[0];
        let id = p["id"].as_str().unwrap().to_owned();
        let data = common::lake_place(&sim, &dir, true, &sim.state_dir.join("cloud-identity"));
        let data_s = data.to_str().unwrap();
        let mut cloud = Cloud::start(&data, addr());

        let config = dir.path("handoff.toml");
        let identity = common::sim_identity_dir(&sim.state_dir);
        std::fs::write(&config, format!("pairing_identity = \"{}\"\n", identity.display())).unwrap();
        let daemon = Command::new(common::handoff_bin())
            .args(["--state-dir", &state, "--runtime-dir", &run_s, "daemon", "--liveness", "6s",
                   "--cloud", &addr().to_string(), "--config"])
            .arg(&config)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null())
            .spawn().unwrap();
        let _daemon = ChildGuard(daemon);
        let deadline = Instant::now() + Duration::from_secs(20);
        let report = loop {
            if let Some(h) = health(&run_s) { break h; }
            assert!(Instant::now() < deadline, "the daemon did not come up");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(report["relay"]["backlog"], 0, "the relay runs: {report}");

        // The claim's event goes through the daemon (which owns the outbox).
        let claim = handoff(&["--state-dir", &state, "--runtime-dir", &run_s, "claim", &id, "--json"]);
        assert_eq!(claim.code, Some(0), "{}", claim.stderr);
        assert_eq!(claim.json()["cloud"]["result"], "applied", "{}", claim.stdout);
        let place = handoff(&["cloud", "--data", data_s, "place", "show", "lake", "--json"]).json();
        assert_eq!(place["homeowner"], "integrator@example.com");

        // The cloud goes away: the release is queued in the daemon's outbox,
        // and the credential kept until the cloud applies it (exit 4: not
        // answered yet).
        cloud.kill9();
        let release = handoff(&["--state-dir", &state, "--runtime-dir", &run_s, "release", &id,
            "--json", "--cloud-wait", "1s"]);
        assert_eq!(release.code, Some(4), "{}", release.stderr);
        let r = release.json();
        assert_eq!(r["cloud"]["result"], "queued", "{}", release.stdout);
        assert_eq!((r["forgotten"].clone(), r["cloud"]["cloud"].clone()),
            (Value::Bool(false), Value::from(addr().to_string())), "{r}");
        let credential = sim.state_dir.join("credentials").join(p["serial"].to_string());
        assert!(credential.join("cert.pem").exists(), "kept while the release is unanswered");
        let h = health(&run_s).unwrap();
        assert_eq!(h["relay"]["backlog"], 1, "{h}");
        // It says why it is not delivering, not only that it is not.
        let h = wait_health(&run_s, "the lost connection reported", |h| {
            h["relay"]["connected"] == false && h["relay"]["last_error"].is_string()
        });
        assert_eq!(h["relay"]["cloud"], addr().to_string(), "{h}");
        let table = handoff(&["--runtime-dir", &run_s, "health"]);
        assert!(table.stdout.contains("; not connected: "), "{}", table.stdout);
        std::thread::sleep(Duration::from_millis(20));
        let stuck = handoff(&["--runtime-dir", &run_s, "health", "--stuck-after", "10ms"]);
        assert_eq!(stuck.code, Some(2), "{}\n{}", stuck.stdout, stuck.stderr);
        assert!(stuck.stderr.contains("the relay is stuck"), "{}", stuck.stderr);

        // The cloud is back: the daemon delivers it by itself.
        let _cloud = Cloud::start(&data, addr());
        let deadline = Instant::now() + Duration::from_secs(90);
        while health(&run_s).unwrap()["relay"]["backlog"] != 0 {
            assert!(Instant::now() < deadline, "the daemon never delivered the release");
            std::thread::sleep(Duration::from_millis(200));
        }
        let place = handoff(&["cloud", "--data", data_s, "place", "show", "lake", "--json"]).json();
        assert_eq!(place["homeowner"], Value::Null, "released once the cloud came back");
        // Then the credential is forgotten on purpose, the cloud not told.
        let unpair = handoff(&["--state-dir", &state, "--runtime-dir", &run_s, "unpair", &id]);
        assert_eq!(unpair.code, Some(0), "{}", unpair.stderr);
        assert!(unpair.stdout.contains("the cloud was not told"), "{}", unpair.stdout);
        assert!(!credential.exists());
        let stats = handoff(&["cloud", "--data", data_s, "stats", "--json"]).json();
        assert_eq!(stats["events"], 2, "claim and release, each once");
        let h = wait_health(&run_s, "connected again", |h| h["relay"]["connected"] == true);
        assert!(handoff(&["--runtime-dir", &run_s, "health"]).stdout.contains("; connected"), "{h}");

        // The cloud's operator revokes this site box: `health` says so and
        // what to do, exit 2, not a silent backoff forever.
        let daemons = handoff(&["cloud", "--data", data_s, "daemon", "list", "--json"]).json();
        let name = daemons[0]["name"].as_str().unwrap().to_owned();
        let revoke = handoff(&["cloud", "--data", data_s, "daemon", "revoke", &name]);
        assert_eq!(revoke.code, Some(0), "{}", revoke.stderr);
        let deadline = Instant::now() + Duration::from_secs(90);
        let told = loop {
            let h = handoff(&["--runtime-dir", &run_s, "health", "--json"]);
            if h.code == Some(2) { break h; }
            assert_eq!(h.code, Some(0), "{}", h.stderr);
            assert!(Instant::now() < deadline, "health never said the identity was revoked");
            std::thread::sleep(Duration::from_millis(200));
        };
        let h = told.json();
        assert_eq!((h["relay"]["connected"].clone(), h["relay"]["last_error_code"].clone()),
            (Value::Bool(false), Value::from("revoked")), "{h}");
        assert!(told.stderr.contains("revoked this site box's identity"), "{}", told.stderr);
    }
}

/// Polls `health --json` until `done` holds (or fails after 90 s).
fn wait_health(run: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(h) = health(run).filter(|h| done(h)) {
            return h;
        }
        assert!(Instant::now() < deadline, "health never showed: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
