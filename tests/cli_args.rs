//! Arguments that cannot work are refused at once, each with one clear
//! line and the usage exit code (2), before anything is looked for; forms
//! an integrator copies from elsewhere (a switch's MAC) are accepted.

mod common;

use std::path::{Path, PathBuf};

use common::{Run, Sim, TempDir, handoff};

/// `handoff --state-dir DIR --runtime-dir DIR ARGS…`: no daemon of this
/// machine's takes part.
fn run_in(dir: &TempDir, args: &[&str]) -> Run {
    let state = dir.path("state");
    let mut all = vec![
        "--state-dir",
        state.to_str().unwrap(),
        "--runtime-dir",
        dir.0.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    handoff(&all)
}

fn assert_usage(run: &Run, args: &[&str], says: &str) {
    assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
    assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
}

#[test]
fn a_zero_timeout_is_a_usage_error() {
    let dir = TempDir::new("args");
    for args in [
        &["claim", "0236e6a7", "--timeout", "0"][..],
        &["claim", "0236e6a7", "--button-timeout", "0s"],
        &["status", "127.0.1.1", "--timeout", "0s"],
        &[
            "takeover",
            "0236e6a7",
            "--share-to",
            "p@example.com",
            "--timeout",
            "0",
        ],
        &[
            "takeover",
            "0236e6a7",
            "--share-to",
            "p@example.com",
            "--button-timeout",
            "0",
        ],
    ] {
        let run = run_in(&dir, args);
        assert_usage(&run, args, "waits for nothing");
    }
}

#[test]
fn a_takeover_to_an_address_that_is_not_an_email_is_a_usage_error() {
    // The `.com` forgotten: the takeover would release the home with
    // nobody given access, so it stops before the button.
    let dir = TempDir::new("args");
    for (email, says) in [
        ("pro@example", "has no top-level domain"),
        ("pro.example.com", "no @"),
        ("pro@example..com", "not a domain name"),
    ] {
        let args = ["takeover", "0236e6a7", "--share-to", email];
        assert_usage(&run_in(&dir, &args), &args, says);
    }
}

#[test]
fn a_cloud_that_is_not_host_port_is_a_usage_error() {
    let dir = TempDir::new("args");
    for (args, says) in [
        (
            &["relay", "--cloud", "cloud.example.com"][..],
            "'cloud.example.com' is not host:port (no port)",
        ),
        (
            &["relay", "--cloud", "a:4433,,b:4433"],
            "'' is not host:port",
        ),
        (
            &["claim", "0236e6a7", "--cloud", "a:4433,a:4433"],
            "a:4433 is listed twice",
        ),
        (
            &["daemon", "--cloud", "2001:db8::1:4433"],
            "write an IPv6 address in brackets",
        ),
    ] {
        let run = run_in(&dir, args);
        assert_usage(&run, args, says);
    }
}

#[test]
fn an_empty_processor_is_a_usage_error() {
    let dir = TempDir::new("args");
    for args in [
        &["claim", ""][..],
        &["release", " "],
        &["status", ""],
        &["takeover", "", "--share-to", "p@example.com"],
    ] {
        let run = run_in(&dir, args);
        assert_usage(&run, args, "empty; name the processor");
    }
}

#[test]
fn a_cisco_style_mac_names_a_processor() {
    let dir = TempDir::new("args");
    let run = run_in(&dir, &["release", "024c.01fb.c368", "--standalone"]);
    // Read as that MAC (nothing is claimed here, so nothing to release).
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no credential for MAC 02:4c:01:fb:c3:68"),
        "{}",
        run.stderr
    );
}

/// The pairing identity the simulator wrote for clients, wherever under
/// its state directory it keeps it.
fn sim_pairing_identity(dir: &Path) -> PathBuf {
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            if entry.path().is_dir() {
                todo.push(entry.path());
            }
        }
        let files = ["client-key.pem", "client-cert.pem", "authority-ca.pem"];
        if files.iter().all(|f| d.join(f).is_file()) {
            return d;
        }
    }
    panic!("no pairing identity under {}", dir.display());
}

lan_test! {
    fn a_typo_in_an_id_suggests_the_processor_that_answered() {
        let sim = Sim::start(&["--count", "2", "--seed", "3"]);
        let dir = TempDir::new("typo");
        let id = sim.ids()[1].clone();
        // The last digit changed: one keystroke away.
        let last = id.chars().last().unwrap();
        let typo = format!("{}{}", &id[..7], if last == '0' { '1' } else { '0' });
        let identity = sim_pairing_identity(&sim.state_dir);
        let args = [
            "pair", &typo, "--standalone", "--timeout", "2s",
            "--pairing-identity", identity.to_str().unwrap(),
        ];
        let run = run_in(&dir, &args);
        assert_usage(&run, &args, &format!("did you mean {id}?"));
        assert!(run.stderr.contains(&format!("no processor with id {typo}")), "{}", run.stderr);
        // Nothing was claimed or written.
        assert!(!dir.path("state").join("credentials").exists());
    }
}

lan_test! {
    /// A LAN address typed for `--first-ip` is not this private network's:
    /// said as such (it read "is another simulator running?"), exit 1,
    /// and a taken address still says what it says.
    fn a_sim_on_an_address_this_network_lacks_says_so() {
        let dir = TempDir::new("sim-first-ip");
        let args = ["sim", "--count", "1", "--first-ip", "192.0.2.10"];
        let run = run_in(&dir, &args);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("that address is not on this network"), "{}", run.stderr);
        assert!(!run.stderr.contains("another simulator"), "{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

lan_test! {
    /// A second simulator started with the same --seed advertises the same
    /// serials: mDNS renames its host, and clients would see one processor
    /// at two addresses. It says so at the default log level.
    fn a_second_sim_with_the_same_seed_warns_of_the_serial_clash() {
        let _first = Sim::start(&["--count", "1", "--seed", "5", "--no-probe"]);
        let dir = TempDir::new("same-seed");
        let (manifest, log) = (dir.path("m.json"), dir.path("stderr"));
        let mut second = std::process::Command::new(common::handoff_bin())
            .args(["--state-dir", dir.path("state").to_str().unwrap(), "sim", "--count", "1"])
            .args(["--seed", "5", "--first-ip", "127.0.2.1", "--manifest"])
            .arg(&manifest)
            .stdin(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !manifest.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = second.kill();
        let _ = second.wait();
        let said = std::fs::read_to_string(&log).unwrap();
        assert!(manifest.exists(), "the second simulator never announced: {said}");
        assert!(said.contains("the same --seed?"), "{said}");
    }
}

#[test]
fn health_json_without_a_daemon_says_so_on_stdout() {
    let dir = TempDir::new("health");
    let run = run_in(&dir, &["health", "--json"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["running"], false, "{v}");
    let socket = dir.path("handoff.sock").display().to_string();
    assert!(
        v["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| *s == socket.as_str()),
        "{v}"
    );
    assert!(v["reason"].as_str().unwrap().contains(&socket), "{v}");
    assert!(
        run.stderr.contains("no handoff daemon is running"),
        "{}",
        run.stderr
    );
}

/// What a command prints goes to a full disk as one error line and exit 1,
/// and to a pipe whose reader has gone (`| head`) quietly: never a panic.
#[test]
fn output_to_a_full_disk_is_an_error_and_to_a_closed_pipe_is_quiet() {
    let dir = TempDir::new("stdout");
    let data = dir.path("cloud");
    let data = data.to_str().unwrap();
    let project = dir.path("p.json");
    let made = handoff(&[
        "cloud",
        "--data",
        data,
        "place",
        "create",
        "--id",
        "lake",
        "--as",
        "owner@example.com",
        "--remote-services",
        "--project-file",
        project.to_str().unwrap(),
    ]);
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let show = |stdout: std::process::Stdio| {
        std::process::Command::new(common::handoff_bin())
            .args(["cloud", "--data", data, "place", "show", "lake", "--json"])
            .stdout(stdout)
            .output()
            .unwrap()
    };

    let full = show(std::fs::File::create("/dev/full").unwrap().into());
    let err = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{err}");
    assert!(
        err.contains("could not be written to standard output"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = show(writer.into());
    let err = String::from_utf8_lossy(&closed.stderr);
    assert_eq!(closed.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}
