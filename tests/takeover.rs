//! `handoff takeover` end to end on a private network: a simulated
//! processor, the reference cloud, and the cloud going down in the middle.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cloud, Sim, TempDir, handoff, handoff_bin};

fn addr() -> SocketAddr {
    "127.0.0.1:4433".parse().unwrap()
}

/// A Place with remote services whose processor is the sim's first, and
/// the site's identity bundle in STATE/cloud-identity.
fn cloud_for(sim: &Sim, dir: &TempDir, remote_services: bool) -> std::path::PathBuf {
    common::lake_place(
        sim,
        dir,
        remote_services,
        &sim.state_dir.join("cloud-identity"),
    )
}

fn takeover(sim: &Sim, extra: &[&str]) -> Command {
    let mut c = Command::new(handoff_bin());
    c.arg("--state-dir")
        .arg(&sim.state_dir)
        .args([
            "takeover",
            sim.manifest[0]["id"].as_str().unwrap(),
            "--share-to",
            "pro@example.com",
        ])
        .args(["--cloud", &addr().to_string(), "--button-timeout", "20s"])
        .arg("--pairing-identity")
        .arg(common::sim_identity_dir(&sim.state_dir))
        .args(if extra.contains(&"--cloud-wait") {
            &[][..]
        } else {
            &["--cloud-wait", "3s"][..]
        })
        .args(extra)
        .stdin(Stdio::null());
    c
}

lan_test! {
    fn takeover_survives_a_cloud_outage_and_never_claims_twice() {
        let dir = TempDir::new("takeover");
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let data = cloud_for(&sim, &dir, true);
        let mut cloud = Cloud::start(&data, addr());

        // First run: the cloud goes away while we wait for the button.
        let mut first = takeover(&sim, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = common::stderr_lines(&mut first);
        let mut seen = common::wait_line(&rx, "Press the button");
        cloud.kill9();
        let press = handoff(&["--state-dir", sim.state_dir.to_str().unwrap(), "sim", "press",
            sim.manifest[0]["id"].as_str().unwrap()]);
        assert_eq!(press.code, Some(0), "{}", press.stderr);
        let status = first.wait().unwrap();
        seen.extend(rx.iter()); // to EOF: the child has exited
        assert_eq!(status.code(), Some(4), "interrupted, not failed: {seen:#?}");
        assert!(seen.iter().any(|l| l.contains("queued")), "{seen:#?}");

        // Second run, cloud back: continues without a button (none will be
        // pressed: a second claim would time out) and finishes.
        let _cloud = Cloud::start(&data, addr());
        let out = takeover(&sim, &["--json"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(!stderr.contains("Press the button"), "claimed twice:\n{stderr}");
        let done: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(done["result"], "done");
        assert_eq!(done["shared_with"], "pro@example.com");

        // The cloud: the pro has access, no homeowner is left, and the site
        // account's temporary access went with the home.
        let show = handoff(&["cloud", "--data", data.to_str().unwrap(), "place", "show", "lake", "--json"]);
        let place = show.json();
        assert_eq!(place["homeowner"], serde_json::Value::Null);
        let accounts: Vec<&str> = place["access"].as_array().unwrap().iter()
            .map(|a| a["account"].as_str().unwrap()).collect();
        assert_eq!(accounts, ["designer@example.com", "pro@example.com"]);

        // And a third run says it is done rather than starting over.
        let again = takeover(&sim, &[]).output().unwrap();
        assert_ne!(again.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
    }
}

lan_test! {
    fn takeover_refuses_where_the_article_says_it_does_not_apply() {
        let dir = TempDir::new("takeover-grey");
        let sim = Sim::start(&["--count", "1", "--no-probe", "--auto-press", "0s"]);
        let data = cloud_for(&sim, &dir, false);
        let _cloud = Cloud::start(&data, addr());
        let out = takeover(&sim, &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("remote services are off"), "{stderr}");
        assert!(stderr.contains("factory-default the processor"), "{stderr}");
        assert!(!stderr.contains("Press the button"), "no claim was tried: {stderr}");
        assert!(sim.state_dir.join("credentials").read_dir().map_or(true, |mut d| d.next().is_none()));
    }
}

lan_test! {
    fn a_takeover_that_died_after_pairing_relays_that_claim_without_a_second_press() {
        let dir = TempDir::new("takeover-died");
        let sim = Sim::start(&["--count", "1", "--no-probe", "--auto-press", "0s"]);
        let data = cloud_for(&sim, &dir, true);
        let _cloud = Cloud::start(&data, addr());
        // The outbox cannot be opened: the run dies right after pairing,
        // with the credential stored and no claim queued.
        let outbox = sim.state_dir.join("outbox.redb");
        std::fs::create_dir_all(&outbox).unwrap();
        let first = takeover(&sim, &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&first.stderr);
        assert_eq!(first.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("Press the button"), "{stderr}");
        assert!(stderr.contains("outbox"), "{stderr}");
        std::fs::remove_dir(&outbox).unwrap();

        let second = takeover(&sim, &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("Press the button"), "paired twice:\n{stderr}");
        assert!(stderr.contains("no second button press"), "{stderr}");
    }
}

lan_test! {
    fn a_takeover_through_the_daemon_claims_there_and_resumes_through_it() {
        let dir = TempDir::new("takeover-daemon");
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let data = cloud_for(&sim, &dir, true);
        let mut cloud = Cloud::start(&data, addr());
        let (id, serial) = (
            sim.manifest[0]["id"].as_str().unwrap().to_owned(),
            sim.manifest[0]["serial"].as_u64().unwrap().to_string(),
        );
        // The site box: a relaying daemon with its own state directory.
        let daemon_state = dir.path("daemon-state");
        let run = dir.path("run").to_str().unwrap().to_owned();
        let config = dir.path("handoff.toml");
        std::fs::write(&config, format!("pairing_identity = \"{}\"\n",
            common::sim_identity_dir(&sim.state_dir).display())).unwrap();
        let daemon = Command::new(handoff_bin())
            .arg("--state-dir").arg(&daemon_state)
            .args(["--runtime-dir", &run, "daemon", "--liveness", "6s", "--cloud", &addr().to_string(),
                   "--cloud-identity", sim.state_dir.join("cloud-identity").to_str().unwrap(), "--config"])
            .arg(&config)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit())
            .spawn().unwrap();
        let _daemon = common::ChildGuard(daemon);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let h = handoff(&["--runtime-dir", &run, "health", "--json"]);
            if h.code == Some(0) && h.json()["processors"] == 1 { break; }
            assert!(Instant::now() < deadline, "the daemon never found the processor");
            std::thread::sleep(Duration::from_millis(100));
        }

        // Without --cloud: the daemon asks the cloud too, as its account
        // (on a site box the bundle is the daemon's, unreadable by users).
        let through_daemon = |extra: &[&str]| {
            let mut c = Command::new(handoff_bin());
            c.arg("--state-dir").arg(&sim.state_dir)
                .args(["--runtime-dir", &run, "takeover", &id, "--share-to", "pro@example.com",
                       "--button-timeout", "20s"])
                .args(extra)
                .env_remove("HANDOFF_CLOUD")
                .stdin(Stdio::null());
            c
        };

        // A run cancelled (Ctrl-C) while the daemon waits for the button:
        // nothing claimed, nothing sent.
        let mut cancelled = through_daemon(&[]).stdout(Stdio::piped()).stderr(Stdio::piped())
            .spawn().unwrap();
        let rx = common::stderr_lines(&mut cancelled);
        let mut seen = common::wait_line(&rx, "Press the button");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(cancelled.id() as i32),
            nix::sys::signal::Signal::SIGINT).unwrap();
        let status = cancelled.wait().unwrap();
        seen.extend(rx.iter()); // to EOF: the child has exited
        assert_eq!(status.code(), Some(130), "{seen:#?}");
        assert!(seen.iter().any(|l| l.contains("cancelled before the claim: nothing changed")), "{seen:#?}");
        assert!(!daemon_state.join("credentials").join(&serial).exists());
        let stats = handoff(&["cloud", "--data", data.to_str().unwrap(), "stats", "--json"]).json();
        assert_eq!(stats["events"], 0, "nothing relayed");
        // Nothing changed, so nothing is left to resume: no record that
        // would refuse a takeover to another pro account.
        let record = daemon_state.join("takeover").join(format!("{serial}.json"));
        assert!(!record.exists(), "a cancelled takeover left {}", record.display());

        // First run: the daemon waits for the button; the cloud goes away.
        let mut first = through_daemon(&["--cloud-wait", "3s"])
            .stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let rx = common::stderr_lines(&mut first);
        let mut seen = common::wait_line(&rx, "Press the button");
        assert!(seen.iter().any(|l| l.starts_with("the daemon at ") && l.ends_with("performs the takeover")), "{seen:#?}");
        assert!(seen.iter().any(|l| l.contains("so integrator@example.com can claim it")), "{seen:#?}");
        cloud.kill9();
        let press = handoff(&["--state-dir", sim.state_dir.to_str().unwrap(), "sim", "press", &id]);
        assert_eq!(press.code, Some(0), "{}", press.stderr);
        let status = first.wait().unwrap();
        seen.extend(rx.iter()); // to EOF: the child has exited
        assert_eq!(status.code(), Some(4), "interrupted, not failed: {seen:#?}");
        // The credential and the takeover's record are the daemon's, not
        // this command's.
        assert!(daemon_state.join("credentials").join(&serial).join("cert.pem").is_file());
        assert!(!sim.state_dir.join("credentials").join(&serial).exists());
        assert!(daemon_state.join("takeover").join(format!("{serial}.json")).is_file());
        assert!(!sim.state_dir.join("takeover").exists());

        // Second run, cloud back: the recorded claim is settled through the
        // daemon's outbox (which it holds), no second press, and the rest
        // goes through the daemon too.
        let _cloud = Cloud::start(&data, addr());
        let out = through_daemon(&["--cloud-wait", "90s", "--json"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(!stderr.contains("Press the button"), "claimed twice:\n{stderr}");
        let place = handoff(&["cloud", "--data", data.to_str().unwrap(), "place", "show", "lake", "--json"]).json();
        assert_eq!(place["homeowner"], serde_json::Value::Null);
        let accounts: Vec<&str> = place["access"].as_array().unwrap().iter()
            .map(|a| a["account"].as_str().unwrap()).collect();
        assert_eq!(accounts, ["designer@example.com", "pro@example.com"]);
        let stats = handoff(&["cloud", "--data", data.to_str().unwrap(), "stats", "--json"]).json();
        assert_eq!(stats["events"], 3, "claim, share, release: each once");
        // Nothing stayed behind in an outbox of the command's own.
        assert!(!sim.state_dir.join("outbox.redb").exists());
        // A third run: the daemon's record says it finished.
        let again = through_daemon(&[]).output().unwrap();
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
    }
}

lan_test! {
    fn no_key_or_link_secret_in_any_output_at_trace_in_human_logs() {
        nothing_secret_in_any_output("human");
    }
}

lan_test! {
    fn no_key_or_link_secret_in_any_output_at_trace_in_json_logs() {
        nothing_secret_in_any_output("json");
    }
}

/// A takeover through a daemon, a claim by the command itself, and a
/// share link made and redeemed through the relay, every process at `-vv`
/// with `HANDOFF_LOG=trace` in the log `format`: no private key (PEM
/// marker, base64 lines, DER bytes as hex or as a Rust byte list) and no
/// share-link secret appears in anything any of them printed.
fn nothing_secret_in_any_output(format: &str) {
    let dir = TempDir::new(&format!("secrets-{format}"));
    let sim = Sim::start(&["--count", "2", "--no-probe", "--auto-press", "300ms"]);
    let bundle = dir.path("bundle");
    let data = common::lake_place(&sim, &dir, true, &bundle);
    let outputs = dir.path("outputs");
    std::fs::create_dir(&outputs).unwrap();
    let loud = |name: &str| {
        let mut c = Command::new(handoff_bin());
        c.args(["-vv", "--log-format", format])
            .env("HANDOFF_LOG", "trace")
            .env_remove("HANDOFF_CLOUD")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(outputs.join(format!("{name}.out"))).unwrap())
            .stderr(std::fs::File::create(outputs.join(format!("{name}.err"))).unwrap());
        c
    };
    let data_s = data.to_str().unwrap();
    let serve = loud("cloud-serve")
        .args([
            "cloud",
            "--data",
            data_s,
            "serve",
            "--listen",
            &addr().to_string(),
        ])
        .spawn()
        .unwrap();
    let _serve = common::ChildGuard(serve);
    common::wait_for_port(addr());

    let (daemon_state, cli_state) = (dir.path("daemon-state"), dir.path("cli-state"));
    let run = dir.path("run").to_str().unwrap().to_owned();
    let config = dir.path("handoff.toml");
    let pairing = common::sim_identity_dir(&sim.state_dir);
    std::fs::write(
        &config,
        format!("pairing_identity = \"{}\"\n", pairing.display()),
    )
    .unwrap();
    let daemon = loud("daemon")
        .arg("--state-dir")
        .arg(&daemon_state)
        .args([
            "--runtime-dir",
            &run,
            "daemon",
            "--cloud",
            &addr().to_string(),
            "--cloud-identity",
            bundle.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let _daemon = common::ChildGuard(daemon);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = handoff(&["--runtime-dir", &run, "health", "--json"]);
        if h.code == Some(0) && h.json()["processors"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon never found both processors: {}",
            read(&outputs.join("daemon.err"))
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ids: Vec<&str> = sim
        .manifest
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();

    // The takeover, performed by the daemon.
    let takeover = loud("takeover")
        .arg("--state-dir")
        .arg(&cli_state)
        .args([
            "--runtime-dir",
            &run,
            "takeover",
            ids[0],
            "--share-to",
            "pro@example.com",
            "--button-timeout",
            "20s",
            "--cloud-wait",
            "30s",
        ])
        .status()
        .unwrap();
    assert_eq!(
        takeover.code(),
        Some(0),
        "{}",
        read(&outputs.join("takeover.err"))
    );
    // A claim by the command itself (the second processor has no Place:
    // the cloud refuses it, after the pairing made and stored a key).
    let _ = loud("claim")
        .arg("--state-dir")
        .arg(&cli_state)
        .args([
            "claim",
            ids[1],
            "--button-timeout",
            "20s",
            "--cloud",
            &addr().to_string(),
            "--cloud-wait",
            "10s",
            "--cloud-identity",
            bundle.to_str().unwrap(),
            "--pairing-identity",
        ])
        .arg(&pairing)
        .status()
        .unwrap();
    assert!(
        cli_state.join("credentials").is_dir(),
        "{}",
        read(&outputs.join("claim.err"))
    );

    // A share link made through the relay, then redeemed through it (30
    // days of access: a 7-day link from it fits whatever the clock does).
    let operator = handoff(&[
        "cloud",
        "--data",
        data_s,
        "share",
        "lake",
        "--to",
        "integrator@example.com",
        "--for",
        "30d",
        "--as",
        "designer@example.com",
    ]);
    assert_eq!(operator.code, Some(0), "{}", operator.stderr);
    let outbox_at = cli_state.join(handoff::outbox::FILE_NAME);
    let relay = |name: &str, kind: handoff::proto::EventKind| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let id = rt.block_on(async {
            let outbox = handoff::outbox::Outbox::open(&outbox_at).unwrap();
            let id = outbox.append(kind).await.unwrap();
            outbox.close().await;
            id
        });
        let status = loud(name)
            .arg("--state-dir")
            .arg(&cli_state)
            .args([
                "relay",
                "--cloud",
                &addr().to_string(),
                "--cloud-identity",
                bundle.to_str().unwrap(),
                "--timeout",
                "30s",
            ])
            .status()
            .unwrap();
        assert_eq!(
            status.code(),
            Some(0),
            "{}\n{}",
            read(&outputs.join(format!("{name}.out"))),
            read(&outputs.join(format!("{name}.err")))
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .join("\n")
        );
        rt.block_on(async {
            let outbox = handoff::outbox::Outbox::open(&outbox_at).unwrap();
            let ack = outbox.outcome(&id).await.unwrap().expect("answered");
            outbox.close().await;
            ack
        })
    };
    let place = handoff::cloud::PlaceId("lake".into());
    let ack = relay(
        "relay-link-new",
        handoff::proto::EventKind::NewShareLink(handoff::proto::NewShareLink {
            place: place.clone(),
            duration: handoff::cloud::AccessDuration::SevenDays,
        }),
    );
    let link = ack.link.expect("the cloud issued a link");
    relay(
        "relay-redeem",
        handoff::proto::EventKind::RedeemLink(handoff::proto::RedeemLink {
            place,
            link: link.clone(),
        }),
    );

    // Every private key any process holds, in the forms a leak would take.
    let mut needles = vec!["PRIVATE KEY".to_owned(), link.secret.clone()];
    let mut keys = 0;
    for root in [&sim.state_dir, &daemon_state, &cli_state, &data, &bundle] {
        for pem in private_keys(root) {
            keys += 1;
            needles.extend(key_forms(&pem));
        }
    }
    // The pairing identity, both claims' keys, the bundle, the cloud CA.
    assert!(keys >= 5, "only {keys} keys found");
    let mut outputs_read = 0;
    for entry in std::fs::read_dir(&outputs).unwrap() {
        let path = entry.unwrap().path();
        let text = read(&path);
        outputs_read += 1;
        for needle in &needles {
            assert!(
                !text.contains(needle.as_str()),
                "{} carries secret material {needle:?}",
                path.display()
            );
        }
    }
    assert_eq!(outputs_read, 2 * 6, "stdout and stderr of six processes");
    // The logs are really at trace and in the format asked.
    let daemon_log = read(&outputs.join("daemon.err"));
    assert!(
        daemon_log.contains("TRACE") || daemon_log.contains("\"level\":\"TRACE\""),
        "{daemon_log}"
    );
    if format == "json" {
        assert!(
            daemon_log.lines().all(|l| l.starts_with('{')),
            "{daemon_log}"
        );
    }
}

fn read(path: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

/// Every PEM private key in the files under `root`.
fn private_keys(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(private_keys(&path));
        } else if let Ok(text) = std::fs::read_to_string(&path)
            && text.contains("PRIVATE KEY-----")
        {
            out.push(text);
        }
    }
    out
}

/// The base64 lines of a PEM key, and slices of its DER from the middle
/// (where the secret scalar is) as lower and upper hex and as `{:?}` of
/// a byte slice prints them.
fn key_forms(pem: &str) -> Vec<String> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let body: Vec<&str> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let der = key.secret_der();
    let mut forms: Vec<String> = body
        .iter()
        .filter(|l| l.len() >= 16)
        .map(|l| l.to_string())
        .collect();
    for start in [der.len() / 3, der.len() / 2] {
        let slice = &der[start..start + 12];
        let hex: String = slice.iter().map(|b| format!("{b:02x}")).collect();
        forms.push(hex.to_uppercase());
        forms.push(hex);
        let list: Vec<String> = slice.iter().map(u8::to_string).collect();
        forms.push(list.join(", "));
    }
    forms
}
