//! `handoff lan [--] CMD…`: CMD runs in a fresh private network (only a
//! multicast loopback, MTU 1500) and handoff exits as CMD did. The README
//! and the examples use it instead of a script a clone does not have.

mod common;

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{TempDir, handoff, handoff_bin};

#[test]
fn the_private_network_has_only_a_multicast_loopback() {
    let run = handoff(&["lan", "--", "ip", "-o", "link"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let links: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(links.len(), 1, "{}", run.stdout);
    let lo = links[0];
    assert!(lo.contains(" lo: <"), "{lo}");
    for flag in ["LOOPBACK", "MULTICAST", "UP"] {
        assert!(lo.contains(flag), "{flag}: {lo}");
    }
    assert!(lo.contains("mtu 1500 "), "{lo}");
    // Multicast is routed to it (mDNS goes out that way).
    let run = handoff(&["lan", "ip", "route", "get", "224.0.0.251"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("dev lo"), "{}", run.stdout);
}

#[test]
fn the_exit_code_is_the_commands() {
    for code in [0, 1, 7, 42] {
        let script = format!("exit {code}");
        let run = handoff(&["lan", "--", "sh", "-c", &script]);
        assert_eq!(run.code, Some(code), "{}", run.stderr);
    }
    // Killed by a signal: 128 + its number, as a shell says.
    let run = handoff(&["lan", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(run.code, Some(128 + 15), "{}", run.stderr);
    // No command: a usage error.
    let run = handoff(&["lan"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}

/// The README's commands that start a simulator in `handoff lan`, each
/// with its `--state-dir` and files moved to a scratch directory.
fn readme_sim_commands(scratch: &Path) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut commands = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match current.as_mut() {
            None if line.starts_with("handoff lan -- sh -c '") && line.contains(" sim ") => {
                current = Some(line.to_owned());
            }
            Some(command) if line == "```" => {
                commands.push(command.clone());
                current = None;
            }
            Some(command) => {
                command.push('\n');
                command.push_str(line);
            }
            None => {}
        }
    }
    let dir = scratch.display().to_string();
    commands
        .into_iter()
        .map(|c| {
            c.replace("/tmp/s ", &format!("{dir}/s "))
                .replace("/tmp/s/", &format!("{dir}/s/"))
                .replace("/tmp/m.json", &format!("{dir}/m.json"))
        })
        .collect()
}

/// Runs `command` with the binary on PATH and checks that the simulator
/// it started said goodbye and no longer answers on `STATE/sim.sock`.
/// Its stderr goes to a file: a simulator left running would hold a pipe
/// open forever.
fn leaves_nothing_running(command: &str, state: &Path, log: &Path) -> Result<(), String> {
    let bin_dir = Path::new(handoff_bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new("bash")
        .args(["-c", command])
        .env("PATH", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .status()
        .expect("run bash");
    let stderr = std::fs::read_to_string(log).unwrap();
    if !status.success() {
        return Err(format!("{status}: {stderr}"));
    }
    if !stderr.contains("handoff sim: said goodbye") {
        return Err(format!("the simulator said no goodbye: {stderr}"));
    }
    if UnixStream::connect(state.join("sim.sock")).is_ok() {
        return Err("a simulator still answers".into());
    }
    Ok(())
}

#[test]
fn the_readme_simulator_commands_leave_nothing_running() {
    let scratch = TempDir::new("readme");
    let commands = readme_sim_commands(&scratch.0);
    assert!(commands.len() >= 2, "{commands:#?}");
    let state = scratch.path("s");
    for command in commands {
        let _ = std::fs::remove_dir_all(&state);
        if let Err(e) = leaves_nothing_running(&command, &state, &scratch.path("log")) {
            panic!("{command}\n{e}");
        }
    }
    // The check sees a simulator left behind by a command without the trap.
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let pid = state.join("pid");
    let careless = format!(
        "handoff lan -- sh -c 'handoff --state-dir {s} sim --count 1 --manifest {s}/m.json & \
         echo $! > {p}; while [ ! -s {s}/m.json ]; do sleep 0.1; done'",
        s = state.display(),
        p = pid.display()
    );
    let found = leaves_nothing_running(&careless, &state, &scratch.path("log"));
    let pid: i32 = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // That simulator is this test's: stop it by its id.
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM);
    assert!(found.is_err(), "a simulator left running went unnoticed");
}

#[test]
fn the_readme_and_examples_need_nothing_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("examples")).unwrap().flatten() {
        files.push(entry.path());
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("../shared"),
            "{} refers to ../shared",
            file.display()
        );
    }
}
