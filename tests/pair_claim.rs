//! Pairing and the homeowner claim are two acts (issue 16, item 1):
//! `pair` never touches the cloud; `claim` names the account and the cloud
//! before the button and refuses when no cloud is known; flags mean what
//! they say; a release the cloud refuses changes nothing here; a green
//! status says what holds for the account that asks.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{ChildGuard, Cloud, Run, Sim, TempDir, handoff};

fn addr() -> SocketAddr {
    "127.0.0.1:4433".parse().unwrap()
}

fn identity(sim: &Sim) -> PathBuf {
    common::sim_identity_dir(&sim.state_dir)
}

/// `handoff --state-dir STATE VERB ARGS…` (with the sim's pairing
/// identity for pair and claim), with no cloud in the environment.
fn cli(state: &Path, sim: &Sim, verb: &str, args: &[&str]) -> Run {
    let out = Command::new(common::handoff_bin())
        .arg("--state-dir")
        .arg(state)
        .arg(verb)
        .args(args)
        .args(if matches!(verb, "pair" | "claim") {
            vec![
                std::ffi::OsString::from("--pairing-identity"),
                identity(sim).into(),
            ]
        } else {
            Vec::new()
        })
        .env_remove("HANDOFF_CLOUD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn place(data: &Path) -> Value {
    handoff(&[
        "cloud",
        "--data",
        data.to_str().unwrap(),
        "place",
        "show",
        "lake",
        "--json",
    ])
    .json()
}

fn events(data: &Path) -> Value {
    handoff(&["cloud", "--data", data.to_str().unwrap(), "stats", "--json"]).json()["events"]
        .clone()
}

fn paired(state: &Path, serial: &Value) -> bool {
    state
        .join("credentials")
        .join(serial.to_string())
        .join("cert.pem")
        .exists()
}

/// A second account's identity bundle in `dir`.
fn enroll(data: &Path, account: &str, dir: &Path) {
    let run = handoff(&[
        "cloud",
        "--data",
        data.to_str().unwrap(),
        "enroll",
        "--name",
        "other-box",
        "--account",
        account,
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

lan_test! {
    fn a_claim_with_no_cloud_known_refuses_before_the_button_and_queues_nothing() {
        let sim = Sim::start(&["--count", "1", "--auto-press", "0s", "--no-probe"]);
        let p = &sim.manifest[0];
        let id = p["id"].as_str().unwrap();
        let state = TempDir::new("claim-no-cloud");
        let run = cli(&state.0, &sim, "claim", &[id]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("a homeowner claim needs a cloud, and none is known"), "{}", run.stderr);
        assert!(run.stderr.contains("handoff pair"), "{}", run.stderr);
        assert!(!run.stderr.contains("Press the button"), "{}", run.stderr);
        assert!(!paired(&state.0, &p["serial"]), "paired anyway");
        assert!(!state.0.join("outbox.redb").exists(), "a homeowner claim was queued for later");

        // The Home Assistant pairing typed as a claim: told to pair instead.
        let ha = state.path("ha");
        let run = cli(&state.0, &sim, "claim", &[id, "--export-dir", ha.to_str().unwrap()]);
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert!(run.stderr.contains(&format!("handoff pair {id} --export-dir")), "{}", run.stderr);
        assert!(!paired(&state.0, &p["serial"]) && !ha.exists());
    }
}

lan_test! {
    fn pairing_for_home_assistant_never_makes_anyone_homeowner_and_a_claim_says_who_before_acting() {
        let dir = TempDir::new("pair-claim");
        let sim = Sim::start(&["--count", "1", "--auto-press", "0s", "--no-probe"]);
        let p = &sim.manifest[0];
        let id = p["id"].as_str().unwrap();
        let bundle = dir.path("bundle");
        let data = common::lake_place(&sim, &dir, true, &bundle);
        let _cloud = Cloud::start(&data, addr());
        let state = TempDir::new("pair-claim-state");
        let ha = state.path("ha");

        // A cloud in the environment and the bundle in place: pairing still
        // tells it nothing.
        std::fs::create_dir_all(&state.0).unwrap();
        let out = Command::new(common::handoff_bin())
            .arg("--state-dir").arg(&state.0)
            .args(["pair", id, "--key", "ec", "--export-dir", ha.to_str().unwrap()])
            .arg("--pairing-identity").arg(identity(&sim))
            .env("HANDOFF_CLOUD", addr().to_string())
            .env("HANDOFF_CLOUD_IDENTITY", &bundle)
            .stdin(Stdio::null())
            .output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stdout.contains("the cloud was not told: nobody became homeowner"), "{stdout}");
        assert!(!stdout.contains("recorded"), "{stdout}");
        assert!(ha.join("caseta.crt").exists());
        assert_eq!(place(&data)["homeowner"], Value::Null);
        assert_eq!(events(&data), 0);

        // The homeowner claim is its own act: it names account and cloud
        // before the button, and the cloud's answer names the cloud.
        let unpair = cli(&state.0, &sim, "unpair", &[id]);
        assert_eq!(unpair.code, Some(0), "{}", unpair.stderr);
        let cloud = addr().to_string();
        let run = cli(&state.0, &sim, "claim", &[
            id, "--key", "ec", "--cloud", &cloud, "--cloud-identity", bundle.to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let said = run.stderr.find(&format!(
            "homeowner claim: integrator@example.com becomes the homeowner of the Place that \
             holds processor {id}, on the cloud at {cloud}"));
        let pressed = run.stderr.find("Press the button");
        assert!(said.is_some() && said < pressed, "{}", run.stderr);
        assert!(run.stdout.contains(&format!(
            "the cloud at {cloud} recorded the homeowner claim; integrator@example.com is the \
             Place's homeowner")), "{}", run.stdout);
        assert_eq!(place(&data)["homeowner"], "integrator@example.com");
    }
}

lan_test! {
    fn a_standalone_claim_uses_its_own_cloud_and_never_the_daemons() {
        let dir = TempDir::new("claim-flags");
        let sim = Sim::start(&["--count", "1", "--auto-press", "0s", "--no-probe"]);
        let p = &sim.manifest[0];
        let id = p["id"].as_str().unwrap();
        let bundle = dir.path("bundle");
        let data = common::lake_place(&sim, &dir, true, &bundle);
        let _cloud = Cloud::start(&data, addr());
        // A daemon relays to the real cloud.
        let run = dir.path("run");
        let daemon_state = dir.path("daemon-state");
        let config = dir.path("handoff.toml");
        std::fs::write(&config, format!("pairing_identity = \"{}\"\n", identity(&sim).display())).unwrap();
        let daemon = Command::new(common::handoff_bin())
            .arg("--state-dir").arg(&daemon_state).arg("--runtime-dir").arg(&run)
            .args(["daemon", "--liveness", "6s", "--cloud", &addr().to_string(), "--cloud-identity"])
            .arg(&bundle).arg("--config").arg(&config)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null())
            .spawn().unwrap();
        let _daemon = ChildGuard(daemon);
        let deadline = Instant::now() + Duration::from_secs(20);
        while handoff(&["--runtime-dir", run.to_str().unwrap(), "health"]).code != Some(0) {
            assert!(Instant::now() < deadline, "the daemon did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }

        // --standalone --cloud at an address where nothing listens: that
        // cloud, which cannot answer; the daemon's cloud hears nothing.
        let state = TempDir::new("claim-flags-state");
        let out = Command::new(common::handoff_bin())
            .arg("--state-dir").arg(&state.0).arg("--runtime-dir").arg(&run)
            .args(["claim", id, "--key", "ec", "--standalone", "--cloud", "127.0.0.1:9",
                   "--cloud-wait", "1s", "--json", "--cloud-identity"])
            .arg(&bundle).arg("--pairing-identity").arg(identity(&sim))
            .stdin(Stdio::null()).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(4), "not answered: {stderr}");
        assert!(stderr.contains("on the cloud at 127.0.0.1:9"), "{stderr}");
        let told: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!((told["cloud"]["result"].as_str(), told["cloud"]["cloud"].as_str()),
            (Some("queued"), Some("127.0.0.1:9")), "{told}");
        assert_eq!(place(&data)["homeowner"], Value::Null, "the daemon's cloud was used");
        assert_eq!(events(&data), 0);
    }
}

lan_test! {
    fn a_release_the_cloud_refuses_keeps_the_credential_and_green_tells_a_stranger_the_truth() {
        let dir = TempDir::new("release-refused");
        let sim = Sim::start(&["--count", "1", "--auto-press", "0s", "--no-probe"]);
        let p = &sim.manifest[0];
        let (id, mac) = (p["id"].as_str().unwrap(), p["mac"].as_str().unwrap());
        let bundle = dir.path("bundle");
        let data = common::lake_place(&sim, &dir, true, &bundle);
        let stranger = dir.path("stranger");
        enroll(&data, "stranger@example.com", &stranger);
        let _cloud = Cloud::start(&data, addr());
        let cloud = addr().to_string();
        let state = TempDir::new("release-refused-state");

        // No homeowner yet: green for the stranger, who has no access, and
        // the status says so (never "you have access").
        let as_stranger = |verb: &str, extra: &[&str]| {
            let mut args = vec![id, "--cloud", &cloud, "--cloud-identity", stranger.to_str().unwrap()];
            args.extend_from_slice(extra);
            cli(&state.0, &sim, verb, &args)
        };
        let st = as_stranger("status", &["--json"]);
        assert_eq!(st.code, Some(0), "{}", st.stderr);
        let st = st.json()["status"].clone();
        assert_eq!((st["status"].as_str(), st["access"].as_bool()), (Some("green"), Some(false)), "{st}");
        let text = as_stranger("status", &[]);
        assert!(text.stdout.starts_with("GREEN: you have no access yet"), "{}", text.stdout);
        assert!(text.stdout.contains("stranger@example.com, cloud at 127.0.0.1:4433"), "{}", text.stdout);
        assert!(!text.stdout.contains("you have access"), "{}", text.stdout);
        let op = handoff(&["cloud", "--data", data.to_str().unwrap(), "status", mac, "--as",
            "stranger@example.com"]);
        assert!(op.stdout.contains("you have no access yet") && !op.stdout.contains("you have access"),
            "{}", op.stdout);

        // The integrator claims; the stranger, paired too, cannot release
        // the home: the cloud refuses, and nothing changes here either.
        let claim = cli(&state.0, &sim, "claim", &[id, "--key", "ec", "--cloud", &cloud,
            "--cloud-identity", bundle.to_str().unwrap()]);
        assert_eq!(claim.code, Some(0), "{}", claim.stderr);
        let st = cli(&state.0, &sim, "status", &[id, "--cloud", &cloud, "--cloud-identity",
            bundle.to_str().unwrap()]);
        assert!(st.stdout.starts_with("GREEN: you have access to this Place"), "{}", st.stdout);
        let release = as_stranger("release", &["--json"]);
        assert_eq!(release.code, Some(3), "{}\n{}", release.stdout, release.stderr);
        let r = release.json();
        assert_eq!((r["cloud"]["result"].as_str(), r["forgotten"].as_bool()), (Some("refused"), Some(false)), "{r}");
        assert!(paired(&state.0, &p["serial"]), "forgotten although the cloud refused");
        let release = as_stranger("release", &[]);
        assert!(release.stdout.contains("the cloud at 127.0.0.1:4433 refused"), "{}", release.stdout);
        assert!(release.stdout.contains("nothing changed: its credential is kept"), "{}", release.stdout);
        assert_eq!(place(&data)["homeowner"], "integrator@example.com");

        // The homeowner's release: both happen.
        let release = cli(&state.0, &sim, "release", &[id, "--cloud", &cloud, "--cloud-identity",
            bundle.to_str().unwrap()]);
        assert_eq!(release.code, Some(0), "{}", release.stderr);
        assert!(release.stdout.contains("the cloud at 127.0.0.1:4433 recorded the release"), "{}", release.stdout);
        assert!(release.stdout.contains("still trusts that credential"), "{}", release.stdout);
        assert!(!paired(&state.0, &p["serial"]));
        assert_eq!(place(&data)["homeowner"], Value::Null);
    }
}

lan_test! {
    fn relay_counts_what_the_cloud_refused() {
        let dir = TempDir::new("relay-refused");
        let sim = Sim::start(&["--count", "1", "--auto-press", "0s", "--no-probe"]);
        let p = &sim.manifest[0];
        let id = p["id"].as_str().unwrap();
        let bundle = dir.path("bundle");
        let data = common::lake_place(&sim, &dir, true, &bundle);
        let cloud = addr().to_string();
        let state = TempDir::new("relay-refused-state");
        // With the cloud down, a release (the homeowner is nobody yet, so
        // the cloud will refuse it) waits in the outbox.
        let _ = cli(&state.0, &sim, "pair", &[id, "--key", "ec"]);
        let queued = cli(&state.0, &sim, "release", &[id, "--cloud", &cloud, "--cloud-identity",
            bundle.to_str().unwrap(), "--cloud-wait", "500ms"]);
        assert_eq!(queued.code, Some(4), "{}", queued.stderr);
        let _cloud = Cloud::start(&data, addr());
        let relay = handoff(&["--state-dir", state.0.to_str().unwrap(), "relay", "--cloud", &cloud,
            "--cloud-identity", bundle.to_str().unwrap()]);
        assert_eq!(relay.code, Some(3), "refused by a rule: {}\n{}", relay.stdout, relay.stderr);
        assert!(relay.stdout.contains("the cloud at 127.0.0.1:4433 applied 0 queued events and refused 1"),
            "{}", relay.stdout);
        assert!(!relay.stdout.contains("relayed 1"), "{}", relay.stdout);
        let json = handoff(&["--state-dir", state.0.to_str().unwrap(), "relay", "--json", "--cloud",
            &cloud, "--cloud-identity", bundle.to_str().unwrap()]).json();
        assert_eq!(json["refused"].as_array().map(Vec::len), Some(0), "nothing left: {json}");
    }
}

/// `(id serial model type)` of every device, `(id type)` of every zone and
/// `(id device number engraving)` of every button, from a manifest's house.
fn manifest_house(house: &Value) -> [std::collections::BTreeSet<String>; 3] {
    let list = |k: &str| house[k].as_array().unwrap().clone();
    [
        list("devices")
            .iter()
            .map(|d| format!("{} {} {} {}", d["id"], d["serial"], d["model"], d["type"]))
            .collect(),
        list("zones")
            .iter()
            .map(|z| format!("{} {}", z["id"], z["type"]))
            .collect(),
        list("buttons")
            .iter()
            .map(|b| {
                format!(
                    "{} {} {} {}",
                    b["id"], b["device"], b["number"], b["engraving"]
                )
            })
            .collect(),
    ]
}

/// The same from `inspect --json` (its ids are strings, as in hrefs).
fn inspected_house(report: &Value) -> [std::collections::BTreeSet<String>; 3] {
    let mut sets: [std::collections::BTreeSet<String>; 3] = Default::default();
    let n = |v: &Value| v.as_str().unwrap().to_owned();
    for area in report["areas"].as_array().unwrap() {
        for d in area["devices"].as_array().unwrap() {
            sets[0].insert(format!(
                "{} {} {} {}",
                n(&d["id"]),
                d["serial"],
                d["model"],
                d["type"]
            ));
            for b in d["buttons"].as_array().unwrap() {
                sets[2].insert(format!(
                    "{} {} {} {}",
                    n(&b["id"]),
                    n(&d["id"]),
                    b["number"],
                    b["engraving"]
                ));
            }
        }
        for z in area["zones"].as_array().unwrap() {
            sets[1].insert(format!("{} {}", n(&z["id"]), z["type"]));
        }
    }
    sets
}

/// Every tag opened is closed, in order (void elements aside): enough to
/// catch a report cut short or a name that became markup.
fn check_well_formed(html: &str) {
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("an unclosed <") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if ["meta", "br"].contains(&name.as_str()) {
            continue;
        }
        if tag.starts_with('/') {
            assert_eq!(
                open.pop().as_deref(),
                Some(name.as_str()),
                "misnested </{name}>"
            );
        } else {
            open.push(name);
        }
    }
    assert!(open.is_empty(), "unclosed {open:?}");
}

lan_test! {
    fn inspect_after_a_pair_lists_exactly_the_manifests_house() {
        let sim = Sim::start(&["--count", "2", "--system-type", "caseta,ra3", "--auto-press", "200ms", "--no-probe"]);
        let state = TempDir::new("inspect-state");
        for (i, p) in sim.manifest.iter().enumerate() {
            let ip = p["addresses"][0].as_str().unwrap();
            let run = cli(&state.0, &sim, "pair", &[ip]);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            let html = state.path(&format!("report-{i}.html"));
            let run = cli(&state.0, &sim, "inspect", &[ip, "--json", "--html", html.to_str().unwrap()]);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            let report: Value = serde_json::from_str(&run.stdout).expect("inspect --json is JSON");
            assert_eq!(report["processor"]["serial"], p["serial"]);
            assert_eq!(report["processor"]["macs"][0], p["mac"]);
            assert_eq!(report["project"]["name"], p["house"]["project"]);
            assert_eq!(inspected_house(&report), manifest_house(&p["house"]), "{}", p["system_type"]);
            assert_eq!(report["counts"]["devices"], p["house"]["devices"].as_array().unwrap().len());
            let text = std::fs::read_to_string(&html).expect("the HTML report");
            check_well_formed(&text);
            assert!(text.contains(p["house"]["buttons"][0]["engraving"].as_str().unwrap()));
        }
    }
}

lan_test! {
    fn inspect_without_a_credential_writes_nothing_and_says_so() {
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let state = TempDir::new("inspect-none");
        let html = state.path("report.html");
        let ip = sim.manifest[0]["addresses"][0].as_str().unwrap();
        let run = cli(&state.0, &sim, "inspect", &[ip, "--html", html.to_str().unwrap()]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("not paired here"), "{}", run.stderr);
        assert!(!html.exists());
    }
}

lan_test! {
    /// A processor that no longer accepts the stored credential (its
    /// pairings removed; its own key unchanged, so the pin still holds):
    /// `inspect` says to claim again, and writes no report.
    fn a_credential_the_processor_no_longer_accepts_says_to_claim_again() {
        let sim_state = TempDir::new("forget-sim");
        let sim_dir = sim_state.0.to_str().unwrap().to_owned();
        let sim = Sim::start(&["--count", "1", "--auto-press", "200ms", "--no-probe", "--state-dir", &sim_dir]);
        let state = TempDir::new("forget-state");
        let ip = sim.manifest[0]["addresses"][0].as_str().unwrap().to_owned();
        let run = cli(&state.0, &sim, "pair", &[&ip]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let run = cli(&state.0, &sim, "inspect", &[&ip, "--json"]);
        assert_eq!(run.code, Some(0), "the credential works before: {}", run.stderr);
        sim.stop();

        // The same processor (same CA and key, from --state-dir), now
        // refusing the credentials it issued.
        let sim = Sim::start(&["--count", "1", "--no-probe", "--state-dir", &sim_dir, "--fault", "forgets-clients"]);
        assert_eq!(sim.manifest[0]["addresses"][0].as_str().unwrap(), ip);
        let html = state.path("report.html");
        let run = cli(&state.0, &sim, "inspect", &[&ip, "--html", html.to_str().unwrap()]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("no longer accepts handoff's credential"), "{}", run.stderr);
        assert!(run.stderr.contains("claim it again"), "{}", run.stderr);
        assert!(!run.stderr.contains("different key"), "the pin still holds: {}", run.stderr);
        assert!(!html.exists(), "no report from a refused credential");
    }
}
