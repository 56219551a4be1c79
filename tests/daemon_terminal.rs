//! `handoff daemon` started in a terminal says it is up, what it watches,
//! where its socket is and how to stop it; with stderr not a terminal
//! (systemd, a pipe) it leaves that to its log.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ChildGuard, TempDir, handoff, handoff_bin};

lan_test! {
    fn the_daemon_in_a_terminal_says_it_runs_and_how_to_stop_it() {
        let dir = TempDir::new("daemon-tty");
        let (state, run) = (dir.path("state"), dir.path("run"));
        // `exec`: script(1) runs the command with $SHELL -c.
        let command = format!(
            "exec {} --state-dir {} --runtime-dir {} daemon",
            handoff_bin(),
            state.display(),
            run.display()
        );
        let mut script = ChildGuard(
            Command::new("script")
                .args(["--quiet", "--flush", "--return", "--command", &command, "/dev/null"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("script(1) from util-linux"),
        );
        let terminal = script.0.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(terminal).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.iter().any(|l: &String| l.contains("Ctrl-C stops it")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("the daemon said nothing in its terminal: {seen:#?}"),
            }
        }
        let text = seen.join("\n");
        assert!(text.contains("handoff daemon running (pid "), "{text}");
        assert!(text.contains("watching for processors on lo"), "{text}");
        let socket = run.join("handoff.sock");
        assert!(text.contains(&format!("control socket {}", socket.display())), "{text}");
        // It is up indeed: the socket it names answers.
        let health = handoff(&["--runtime-dir", run.to_str().unwrap(), "health", "--json"]);
        assert_eq!(health.code, Some(0), "{}", health.stderr);
        // And Ctrl-C in its terminal stops it, as it says.
        let stdin = script.0.stdin.as_mut().unwrap();
        stdin.write_all(b"\x03").unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = script.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the daemon ignored Ctrl-C in its terminal");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}");
    }
}

lan_test! {
    fn the_daemon_without_a_terminal_leaves_it_to_the_log() {
        let dir = TempDir::new("daemon-notty");
        let run = dir.path("run");
        let mut daemon = ChildGuard(
            Command::new(handoff_bin())
                .arg("--state-dir")
                .arg(dir.path("state"))
                .arg("--runtime-dir")
                .arg(&run)
                .arg("daemon")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the daemon"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while handoff(&["--runtime-dir", run.to_str().unwrap(), "health"]).code != Some(0) {
            assert!(Instant::now() < deadline, "the daemon did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Past the moment a terminal would have been told.
        std::thread::sleep(Duration::from_millis(500));
        let (mut stdout, mut stderr) = (daemon.0.stdout.take().unwrap(), daemon.0.stderr.take().unwrap());
        daemon.0.kill().unwrap();
        daemon.0.wait().unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        stdout.read_to_string(&mut out).unwrap();
        stderr.read_to_string(&mut err).unwrap();
        assert!(!err.contains("handoff daemon running"), "{err}");
        assert_eq!(out, "");
    }
}
