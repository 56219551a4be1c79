//! Claims performed by the daemon for the CLI: the processor comes from
//! the daemon's inventory, the daemon pairs with its own identity and keeps
//! the credential in its own state directory, the countdown shows in the
//! CLI's terminal, and the claim's event goes to the cloud through the
//! daemon's relay. Each test on its own private network.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{ChildGuard, Cloud, Sim, TempDir, handoff, handoff_bin, wait_line};

/// `handoff daemon` with its own state directory; its configuration names
/// the simulator's pairing identity (as an integrator's names the one the
/// vendor issued them).
struct Daemon {
    _child: ChildGuard,
    state: PathBuf,
    run: String,
}

impl Daemon {
    fn start(dir: &TempDir, pairing_identity: &Path, extra: &[&str]) -> Daemon {
        let state = dir.path("daemon-state");
        let run = dir.path("run").to_str().unwrap().to_owned();
        let config = dir.path("handoff.toml");
        std::fs::write(
            &config,
            format!(
                "pairing_identity = \"{}\"\nbutton_timeout = \"30s\"\n",
                pairing_identity.display()
            ),
        )
        .unwrap();
        let child = Command::new(handoff_bin())
            .arg("--state-dir")
            .arg(&state)
            .args([
                "--runtime-dir",
                &run,
                "daemon",
                "--liveness",
                "6s",
                "--config",
            ])
            .arg(&config)
            .args(extra)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let daemon = Daemon {
            _child: ChildGuard(child),
            state,
            run,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let h = daemon.cli(&["health", "--json"]);
            if h.code == Some(0) && h.json()["processors"].as_u64() > Some(0) {
                return daemon;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never found the simulator"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `handoff ARGS…` pointed at this daemon, with a state directory of
    /// its own that holds nothing.
    fn cli(&self, args: &[&str]) -> common::Run {
        let mut all = vec![
            "--runtime-dir",
            &self.run,
            "--state-dir",
            "/nonexistent/cli-state",
        ];
        all.extend_from_slice(args);
        handoff(&all)
    }

    /// `handoff claim PROCESSOR ARGS…` (a homeowner claim) started, its
    /// stderr lines on a channel.
    fn spawn_claim(&self, processor: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
        self.spawn("claim", processor, args)
    }

    /// `handoff pair PROCESSOR ARGS…` started, its stderr lines on a
    /// channel.
    fn spawn_pair(&self, processor: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
        self.spawn("pair", processor, args)
    }

    fn spawn(&self, verb: &str, processor: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
        let mut child = Command::new(handoff_bin())
            .args([
                "--runtime-dir",
                &self.run,
                "--state-dir",
                "/nonexistent/cli-state",
            ])
            .args([verb, processor])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = common::stderr_lines(&mut child);
        (child, rx)
    }

    fn credential(&self, serial: &str) -> PathBuf {
        self.state.join("credentials").join(serial)
    }
}

fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "the CLI did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the (exited) CLI wrote after the lines already read, to its EOF:
/// lines still in the reader thread would be lost to `try_iter`.
fn rest(lines: &mpsc::Receiver<String>) -> String {
    lines.iter().collect::<Vec<_>>().join("\n")
}

lan_test! {
    fn the_daemon_performs_the_claim_streams_the_countdown_and_relays_it() {
        let dir = TempDir::new("daemon-claim");
        let sim = Sim::start(&["--count", "1", "--no-probe", "--auto-press", "1s"]);
        let p = &sim.manifest[0];
        let (id, serial, mac) = (
            p["id"].as_str().unwrap().to_owned(),
            p["serial"].as_u64().unwrap().to_string(),
            p["mac"].as_str().unwrap().to_owned(),
        );
        // The cloud holds the Place, with this processor's CA.
        let data = common::lake_place(&sim, &dir, true, &dir.path("daemon-state/cloud-identity"));
        let data_s = data.to_str().unwrap();
        let addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let _cloud = Cloud::start(&data, addr);
        let daemon = Daemon::start(&dir, &common::sim_identity_dir(&sim.state_dir),
            &["--cloud", &addr.to_string()]);

        // The Place's state, asked by the daemon as its account; the
        // processor named by address is found in the daemon's inventory.
        let address = p["addresses"][0].as_str().unwrap().to_owned();
        let status = daemon.cli(&["status", &address, "--json"]);
        assert_eq!(status.code, Some(0), "{}", status.stderr);
        let st = status.json()["status"].clone();
        assert_eq!((st["status"].as_str(), st["account"].as_str(), st["id"].as_str()),
            (Some("green"), Some("integrator@example.com"), Some(id.as_str())), "{st}");
        assert_eq!(st["place"], Value::Null, "no access before the claim: {st}");
        // Green, but the status says what holds for this account: no access.
        assert_eq!(st["access"], false, "{st}");
        assert!(st["guidance"].as_str().unwrap().contains("no access yet"), "{st}");
        assert!(!status.stdout.contains("you have access"), "{}", status.stdout);

        // Named by MAC: the daemon finds it in its inventory.
        let (mut claim, lines) = daemon.spawn_claim(&mac, &["--json"]);
        let seen = wait_line(&lines, "button pressed");
        // Before the button: which account becomes homeowner, on which cloud.
        let said = seen.iter().position(|l| l.starts_with("homeowner claim: integrator@example.com \
            becomes the homeowner") && l.contains("on the cloud at 127.0.0.1:4433"));
        let pressed = seen.iter().position(|l| l.starts_with("Press the button on"));
        assert!(said.is_some() && said < pressed, "{seen:#?}");
        let countdown = seen.iter().find(|l| l.starts_with("Press the button on")).unwrap_or_else(|| {
            panic!("no countdown before the press: {seen:#?}")
        });
        // The window is the daemon's configured button_timeout.
        assert!(countdown.contains(&id) && countdown.contains("30 s left"), "{countdown}");
        assert!(seen.iter().any(|l| l.starts_with("the daemon at ")), "{seen:#?}");
        assert_eq!(wait_exit(&mut claim), 0, "{}", rest(&lines));
        let mut out = String::new();
        std::io::Read::read_to_string(claim.stdout.as_mut().unwrap(), &mut out).unwrap();
        let told: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!((told["id"].as_str(), told["mac"].as_str()), (Some(id.as_str()), Some(mac.as_str())), "{told}");
        assert_eq!(told["cloud"]["result"], "applied", "{told}");
        assert_eq!(told["cloud"]["cloud"], "127.0.0.1:4433", "{told}");
        assert_eq!(told["cloud"]["account"], "integrator@example.com", "{told}");
        assert_eq!(told["credential_dir"].as_str().map(PathBuf::from), Some(daemon.credential(&serial)), "{told}");

        // The daemon keeps the credential; the cloud has the claim.
        let credential = daemon.credential(&serial);
        for file in ["key.pem", "cert.pem", "processor-ca.pem", "server-identity.pem"] {
            assert!(credential.join(file).is_file(), "{} missing", credential.join(file).display());
        }
        let place = handoff(&["cloud", "--data", data_s, "place", "show", "lake", "--json"]).json();
        assert_eq!(place["homeowner"], "integrator@example.com", "{place}");
        // The claim reported what the daemon's discovery saw of the
        // processor, and the cloud keeps it as said by the site box
        // enrolled as site-1 (not the outbox's random daemon id).
        let told = &place["processors"][0];
        assert_eq!(told["serial"].as_u64(), p["serial"].as_u64(), "{place}");
        assert_eq!((told["model"].as_str(), told["firmware"].as_str()),
            (p["product"].as_str(), p["firmware"].as_str()), "{told} vs {p}");
        assert!(told["model"].is_string() && told["firmware"].is_string(), "{told}");
        assert_eq!((told["reported_by"].as_str(), told["last_site_box"].as_str()),
            (Some("site-1"), Some("site-1")), "{told}");
        let claimed_at = told["last_contact"].as_u64().unwrap_or_else(|| panic!("{told}"));
        assert_eq!(told["reported_at"].as_u64(), Some(claimed_at), "{told}");
        let st = daemon.cli(&["status", &id, "--json"]).json()["status"].clone();
        assert_eq!(st["place"], "lake", "the daemon's account has the Place now: {st}");

        // A second claim of a claimed processor: the daemon's refusal, as
        // the CLI's own would be.
        let again = daemon.cli(&["claim", &id]);
        assert_eq!(again.code, Some(1));
        assert!(again.stderr.contains("is already paired"), "{}", again.stderr);

        // Released through the daemon: its credential goes, the cloud hears.
        let release = daemon.cli(&["release", &id, "--json"]);
        assert_eq!(release.code, Some(0), "{}", release.stderr);
        let r = release.json();
        assert_eq!((r["released"].clone(), r["cloud"]["result"].clone()),
            (Value::Bool(true), Value::from("applied")), "{r}");
        assert!(!credential.exists());
        let place = handoff(&["cloud", "--data", data_s, "place", "show", "lake", "--json"]).json();
        assert_eq!(place["homeowner"], Value::Null, "{place}");
        // The release is a contact too; it reports no model, so the
        // claim's stays, with its time.
        let told = &place["processors"][0];
        assert!(told["last_contact"].as_u64() >= Some(claimed_at), "{told}");
        assert_eq!((told["model"].as_str(), told["reported_at"].as_u64()),
            (p["product"].as_str(), Some(claimed_at)), "{told}");
        let stats = handoff(&["cloud", "--data", data_s, "stats", "--json"]).json();
        assert_eq!(stats["events"], 2, "claim and release, each once");

        // Nothing of a claim the daemon does not hold is released.
        let none = daemon.cli(&["release", &id]);
        assert_eq!(none.code, Some(1));
        assert!(none.stderr.contains("not paired here"), "{}", none.stderr);
    }
}

lan_test! {
    fn a_cancelled_claim_stores_nothing_and_a_press_that_never_comes_is_a_clear_error() {
        let dir = TempDir::new("daemon-claim-cancel");
        // Nobody presses this processor's button.
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let (id, serial) = (
            sim.manifest[0]["id"].as_str().unwrap().to_owned(),
            sim.manifest[0]["serial"].as_u64().unwrap().to_string(),
        );
        let daemon = Daemon::start(&dir, &common::sim_identity_dir(&sim.state_dir), &[]);

        // Ctrl-C while the countdown runs: the daemon drops the pairing.
        let (mut claim, lines) = daemon.spawn_pair(&id, &[]);
        wait_line(&lines, "Press the button on");
        // While it waits, a second claim of the same processor is told so.
        let busy = daemon.cli(&["pair", &id]);
        assert_eq!(busy.code, Some(1));
        assert!(busy.stderr.contains("already claiming"), "{}", busy.stderr);
        // A homeowner claim through a daemon that relays to no cloud is
        // refused before anything happens, instead of being queued for
        // whoever relays next.
        let homeowner = daemon.cli(&["claim", &id]);
        assert_eq!(homeowner.code, Some(1), "{}", homeowner.stderr);
        assert!(homeowner.stderr.contains("relays to no cloud"), "{}", homeowner.stderr);
        assert!(homeowner.stderr.contains("handoff pair"), "{}", homeowner.stderr);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(claim.id() as i32),
            nix::sys::signal::Signal::SIGINT).unwrap();
        assert_eq!(wait_exit(&mut claim), 130);
        let said = rest(&lines);
        assert!(said.contains("cancelled: nothing was stored"), "{said}");
        assert!(!daemon.credential(&serial).exists());
        // The daemon is free to claim it again at once (the slot is gone).
        let (mut claim, lines) = daemon.spawn_pair(&id, &["--button-timeout", "2s"]);
        wait_line(&lines, "Press the button on");
        assert_eq!(wait_exit(&mut claim), 1);
        let said = rest(&lines);
        assert!(said.contains("nobody pressed the button") && said.contains("within 2 s"), "{said}");
        assert!(!daemon.credential(&serial).exists());

        // The processor vanishes while the daemon waits for its button.
        let (mut claim, lines) = daemon.spawn_pair(&id, &[]);
        wait_line(&lines, "Press the button on");
        sim.kill();
        assert_eq!(wait_exit(&mut claim), 1);
        let said = rest(&lines);
        assert!(said.contains("went away during the claim"), "{said}");
        assert!(!daemon.credential(&serial).exists());
        // Through all of it the daemon kept serving.
        assert_eq!(daemon.cli(&["health"]).code, Some(0));
        // Nothing was queued for the cloud either.
        assert!(!daemon.state.join("outbox.redb").exists());
    }
}

lan_test! {
    fn sigterm_while_the_daemon_waits_for_a_button_cancels_the_claim_and_stops_cleanly() {
        let dir = TempDir::new("daemon-claim-term");
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let (id, serial) = (
            sim.manifest[0]["id"].as_str().unwrap().to_owned(),
            sim.manifest[0]["serial"].as_u64().unwrap().to_string(),
        );
        let mut daemon = Daemon::start(&dir, &common::sim_identity_dir(&sim.state_dir), &[]);
        let (mut claim, lines) = daemon.spawn_pair(&id, &[]);
        wait_line(&lines, "Press the button on");
        let child = &mut daemon._child.0;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM).unwrap();
        // Stops (within its 5 s bound; 30 s here only to catch a hang) long
        // before the 30 s button window would have closed.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop during a claim");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status}");
        // The client was told: the claim is cancelled, nothing stored.
        assert_eq!(wait_exit(&mut claim), 130);
        let said = rest(&lines);
        assert!(said.contains("cancelled: nothing was stored"), "{said}");
        assert!(!daemon.credential(&serial).exists());
        assert!(!Path::new(&daemon.run).join("handoff.sock").exists(), "socket removed");
    }
}

lan_test! {
    fn a_daemon_without_its_pairing_identity_says_where_to_put_it_and_stores_nothing() {
        let dir = TempDir::new("daemon-claim-noid");
        let sim = Sim::start(&["--count", "1", "--no-probe", "--auto-press", "0s"]);
        let id = sim.manifest[0]["id"].as_str().unwrap().to_owned();
        let missing = dir.path("no-such-identity");
        let daemon = Daemon::start(&dir, &missing, &[]);
        let claim = daemon.cli(&["pair", &id]);
        assert_eq!(claim.code, Some(1), "{}", claim.stdout);
        assert!(claim.stderr.contains("cannot use its pairing identity")
            && claim.stderr.contains(missing.to_str().unwrap())
            && claim.stderr.contains("--standalone"), "{}", claim.stderr);
        assert!(!daemon.state.join("credentials").exists());
    }
}

/// A processor paired by the daemon: the pair command's exit code is 0.
fn pair_through(daemon: &Daemon, address: &str) {
    let (mut pair, lines) = daemon.spawn_pair(address, &[]);
    assert_eq!(wait_exit(&mut pair), 0, "{}", rest(&lines));
}

/// No report file, and no half-written one beside it.
fn assert_no_report(dir: &TempDir, html: &Path) {
    assert!(!html.exists(), "a report from a failed read");
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("report"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

lan_test! {
    /// On a site box the credential is the daemon's: `inspect` asks the
    /// daemon, which reads the house and streams the report back. It is
    /// the report a local read with the same credential gives.
    fn inspect_through_the_daemon_equals_inspect_with_its_credential_locally() {
        let dir = TempDir::new("daemon-inspect");
        let sim = Sim::start(&["--count", "1", "--system-type", "qsx", "--no-probe", "--auto-press", "200ms"]);
        let daemon = Daemon::start(&dir, &common::sim_identity_dir(&sim.state_dir), &[]);
        let address = sim.manifest[0]["addresses"][0].as_str().unwrap().to_owned();
        pair_through(&daemon, &address);

        let html = dir.path("report.html");
        // The CLI's own state directory does not exist: only the daemon can read it.
        let through = daemon.cli(&["inspect", &address, "--json", "--html", html.to_str().unwrap()]);
        assert_eq!(through.code, Some(0), "{}", through.stderr);
        let local = handoff(&["--runtime-dir", dir.path("no-daemon-here").to_str().unwrap(),
            "--state-dir", daemon.state.to_str().unwrap(), "inspect", &address, "--json"]);
        assert_eq!(local.code, Some(0), "{}", local.stderr);
        let (through_json, local_json) = (through.json(), local.json());
        assert_eq!(through_json, local_json);
        assert_eq!(through_json["counts"]["devices"],
            sim.manifest[0]["house"]["devices"].as_array().unwrap().len());
        assert!(std::fs::read_to_string(&html).unwrap().contains("</html>"));

        // A processor the daemon holds no credential for: the CLI tries
        // its own, and says both.
        let none = daemon.cli(&["inspect", "127.0.9.9", "--json"]);
        assert_eq!(none.code, Some(1), "{}", none.stderr);
        assert!(none.stderr.contains("the daemon at ") && none.stderr.contains("holds no credential"),
            "{}", none.stderr);
        assert!(none.stdout.is_empty(), "{}", none.stdout);
    }
}

lan_test! {
    fn a_processor_that_drops_mid_read_through_the_daemon_is_a_clear_error_and_no_report() {
        let dir = TempDir::new("daemon-inspect-drop");
        let sim = Sim::start(&["--count", "1", "--system-type", "ra3", "--no-probe", "--auto-press", "200ms",
            "--fault", "drops-mid-read"]);
        let daemon = Daemon::start(&dir, &common::sim_identity_dir(&sim.state_dir), &[]);
        let address = sim.manifest[0]["addresses"][0].as_str().unwrap().to_owned();
        pair_through(&daemon, &address);
        let html = dir.path("report.html");
        let run = daemon.cli(&["inspect", &address, "--html", html.to_str().unwrap()]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("dropped the connection while its house was read"), "{}", run.stderr);
        assert!(run.stderr.contains("no report was written"), "{}", run.stderr);
        assert_no_report(&dir, &html);
    }
}

lan_test! {
    fn a_credential_no_longer_accepted_through_the_daemon_says_to_claim_again() {
        let dir = TempDir::new("daemon-inspect-forgot");
        let sim_state = TempDir::new("daemon-inspect-forgot-sim");
        let sim_dir = sim_state.0.to_str().unwrap().to_owned();
        let sim = Sim::start(&["--count", "1", "--no-probe", "--auto-press", "200ms", "--state-dir", &sim_dir]);
        let daemon = Daemon::start(&dir, &common::sim_identity_dir(&sim.state_dir), &[]);
        let address = sim.manifest[0]["addresses"][0].as_str().unwrap().to_owned();
        pair_through(&daemon, &address);
        sim.stop();
        let _sim = Sim::start(&["--count", "1", "--no-probe", "--state-dir", &sim_dir, "--fault", "forgets-clients"]);
        let html = dir.path("report.html");
        let run = daemon.cli(&["inspect", &address, "--html", html.to_str().unwrap()]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("no longer accepts handoff's credential"), "{}", run.stderr);
        assert!(run.stderr.contains("claim it again"), "{}", run.stderr);
        assert_no_report(&dir, &html);
    }
}
