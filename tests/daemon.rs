//! The site daemon and its control socket, each test on its own private
//! network: `handoff daemon` (or `handoffd`, as systemd's unit runs it)
//! and `handoff sim` run as real processes, and the CLI talks to the
//! daemon through the socket.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sim, TempDir, handoff, handoff_bin, identity_facts};
use handoff::proto::control::{ControlMessage, Request, decode, encode, error_code};
use serde_json::Value;

const HANDOFFD: &str = env!("CARGO_BIN_EXE_handoffd");

/// A running `handoff daemon` with its own state and runtime directories.
struct Daemon {
    child: Option<Child>,
    dir: TempDir,
}

impl Daemon {
    fn state(&self) -> PathBuf {
        self.dir.path("state")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path("run")
    }

    fn socket(&self) -> PathBuf {
        self.run_dir().join("handoff.sock")
    }

    /// `handoff daemon` with its own (empty unless written) configuration
    /// file beside `state`, never the machine's.
    fn command(state: &Path, run: &Path) -> Command {
        Daemon::command_of(Command::new(handoff_bin()), &["daemon"], state, run)
    }

    /// The same daemon as `handoffd`, the binary systemd's unit runs.
    fn command_alone(state: &Path, run: &Path) -> Command {
        Daemon::command_of(Command::new(HANDOFFD), &[], state, run)
    }

    fn command_of(mut c: Command, subcommand: &[&str], state: &Path, run: &Path) -> Command {
        let config = state.with_extension("toml");
        if !config.exists() {
            std::fs::write(&config, "").unwrap();
        }
        c.arg("--state-dir")
            .arg(state)
            .arg("--runtime-dir")
            .arg(run)
            .args(subcommand)
            .args(["--liveness", "6s", "--config"])
            .arg(config)
            .env("HANDOFF_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        c
    }

    /// Starts a daemon and waits until its socket answers.
    fn start() -> Daemon {
        Daemon::start_with(TempDir::new("daemon"), |_| {})
    }

    fn start_with(dir: TempDir, tweak: impl FnOnce(&mut Command)) -> Daemon {
        let mut command = Daemon::command(&dir.path("state"), &dir.path("run"));
        command.stderr(Stdio::inherit());
        tweak(&mut command);
        let child = command.spawn().expect("spawn handoff daemon");
        let mut daemon = Daemon {
            child: Some(child),
            dir,
        };
        daemon.wait_serving();
        daemon
    }

    fn wait_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("handoff daemon exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the daemon's socket never answered"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `handoff ARGS…` pointed at this daemon.
    fn cli(&self, args: &[&str]) -> common::Run {
        let run = self.run_dir();
        let mut all = vec!["--runtime-dir", run.to_str().unwrap()];
        all.extend_from_slice(args);
        handoff(&all)
    }

    fn health(&self) -> Value {
        let run = self.cli(&["health", "--json"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run.json()
    }

    /// Waits until the daemon's inventory holds `n` processors.
    fn wait_inventory(&self, n: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let h = self.health();
            if h["processors"] == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "inventory never reached {n}: {h}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status (a hang is a failure, not a wait
    /// forever).
    fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the daemon did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sorted_by_id(v: &Value) -> Vec<Value> {
    let mut list = v.as_array().unwrap().clone();
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    list
}

lan_test! {
    fn discover_through_the_daemon_lists_the_simulated_fleet_as_standalone_does() {
        let daemon = Daemon::start();
        let sim = Sim::start(&["--count", "3", "--seed", "41", "--no-probe", "--system-type", "ra3,qsx,caseta"]);
        daemon.wait_inventory(3, Duration::from_secs(15));

        let through = daemon.cli(&["-v", "discover", "--json"]);
        assert_eq!(through.code, Some(0), "{}", through.stderr);
        assert!(through.stderr.contains("discover answered by the daemon"), "{}", through.stderr);
        let found = through.json();
        let facts: std::collections::BTreeSet<_> = found.as_array().unwrap().iter().map(identity_facts).collect();
        let want: std::collections::BTreeSet<_> = sim.manifest.iter().map(identity_facts).collect();
        assert_eq!(facts, want);

        // The same JSON, field for field, as this process browsing itself.
        let alone = daemon.cli(&["-v", "discover", "--json", "--standalone", "--expect", "3", "--timeout", "10s"]);
        assert_eq!(alone.code, Some(0), "{}", alone.stderr);
        assert!(!alone.stderr.contains("answered by the daemon"), "{}", alone.stderr);
        assert_eq!(sorted_by_id(&found), sorted_by_id(&alone.json()));

        // And the table for people.
        let table = daemon.cli(&["discover"]);
        // A line that starts with a space continues the one above it.
        assert_eq!(table.stdout.lines().filter(|l| !l.starts_with(' ')).count(), 4, "{}", table.stdout);
        assert!(table.stdout.contains(" QSX "), "{}", table.stdout);
    }
}

lan_test! {
    fn a_stopped_processor_leaves_the_daemons_inventory_and_health_says_when() {
        let daemon = Daemon::start();
        let a = Sim::start(&["--seed", "51", "--no-probe", "--instance-name", "A"]);
        let b = Sim::start(&["--seed", "52", "--no-probe", "--instance-name", "B", "--first-ip", "127.0.2.1"]);
        daemon.wait_inventory(2, Duration::from_secs(15));
        let before = daemon.health();
        assert!(before["last_event_ms"].is_u64(), "{before}");
        assert_eq!(before["relay"], Value::Null);

        let gone = a.ids()[0].clone();
        a.stop();
        daemon.wait_inventory(1, Duration::from_secs(15));
        let left = daemon.cli(&["discover", "--json"]).json();
        let ids: Vec<&str> = left.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![b.ids()[0].as_str()], "{gone} should be gone");
    }
}

lan_test! {
    fn discover_watch_streams_from_the_daemon() {
        let daemon = Daemon::start();
        let a = Sim::start(&["--seed", "61", "--no-probe"]);
        daemon.wait_inventory(1, Duration::from_secs(15));
        let id = a.ids()[0].clone();
        let run = daemon.run_dir();
        let watch = common::Watch::start(&["--runtime-dir", run.to_str().unwrap()]);
        let alone = common::Watch::start(&["--standalone", "--liveness", "6s"]);
        // Known before the watch began: reported as added first.
        let through = watch.wait_for(Duration::from_secs(10), "added", |e| common::is_event(e, "added", &id));
        let direct = alone.wait_for(Duration::from_secs(10), "added", |e| common::is_event(e, "added", &id));
        // The same line, field for field, as a watch browsing itself.
        assert_eq!(through, direct);
        a.stop();
        watch.wait_for(Duration::from_secs(15), "removed", |e| common::is_event(e, "removed", &id));
    }
}

lan_test! {
    fn sigterm_stops_the_daemon_with_exit_zero_and_removes_its_socket() {
        let daemon = Daemon::start();
        let socket = daemon.socket();
        let _sim = Sim::start(&["--seed", "91", "--no-probe"]);
        daemon.wait_inventory(1, Duration::from_secs(15));
        // A watcher holds a connection open: the stop must not wait on it.
        let mut watcher = UnixStream::connect(&socket).unwrap();
        watcher.write_all(&encode(&ControlMessage::Watch(Request { request: 1 })).unwrap()).unwrap();
        // Its first event: the watch is being served.
        assert!(matches!(read_frame(&mut watcher), Some(ControlMessage::Event(_))));
        let status = daemon.terminate();
        assert!(status.success(), "{status}");
        assert!(!socket.exists());
        let mut rest = Vec::new();
        watcher.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{rest:?}");
    }
}

lan_test! {
    fn health_without_a_daemon_is_a_clear_error() {
        let dir = TempDir::new("nodaemon");
        let run = handoff(&["--runtime-dir", dir.0.to_str().unwrap(), "health"]);
        assert_eq!(run.code, Some(1));
        assert!(run.stderr.contains("no handoff daemon is running"), "{}", run.stderr);
        assert_eq!(run.stdout, "");
    }
}

lan_test! {
    fn a_stale_socket_file_from_a_killed_daemon_is_replaced() {
        let dir = TempDir::new("stale");
        std::fs::create_dir_all(dir.path("run")).unwrap();
        drop(UnixListener::bind(dir.path("run").join("handoff.sock")).unwrap());
        assert!(dir.path("run").join("handoff.sock").exists());
        let daemon = Daemon::start_with(dir, |_| {});
        assert_eq!(daemon.health()["processors"], 0);
    }
}

lan_test! {
    fn a_second_daemon_refuses_to_start_while_the_first_runs() {
        let first = Daemon::start();
        // Same state directory: the lock says no.
        let out = Daemon::command(&first.state(), &first.dir.path("run2")).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("another handoff daemon uses this state directory"), "{err}");
        // Another state directory, same socket: the live socket says no.
        let out = Daemon::command(&first.dir.path("state2"), &first.run_dir()).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("another handoff daemon answers on"), "{err}");
        // The first never noticed.
        assert!(first.socket().exists());
        assert_eq!(first.health()["processors"], 0);
    }
}

lan_test! {
    fn handoffd_is_the_daemon_alone_and_shares_its_lock_with_handoff_daemon() {
        let dir = TempDir::new("handoffd");
        let mut command = Daemon::command_alone(&dir.path("state"), &dir.path("run"));
        command.stderr(Stdio::inherit());
        let child = command.spawn().expect("spawn handoffd");
        let pid = child.id();
        let mut daemon = Daemon { child: Some(child), dir };
        daemon.wait_serving();
        let sim = Sim::start(&["--count", "2", "--seed", "95", "--no-probe"]);
        daemon.wait_inventory(2, Duration::from_secs(15));
        // The CLI's commands find it as they find `handoff daemon`.
        assert_eq!(daemon.health()["pid"], pid);
        let found = daemon.cli(&["discover", "--json"]).json();
        let facts: std::collections::BTreeSet<_> = found.as_array().unwrap().iter().map(identity_facts).collect();
        let want: std::collections::BTreeSet<_> = sim.manifest.iter().map(identity_facts).collect();
        assert_eq!(facts, want);
        // One daemon per state directory, whichever binary runs it.
        let out = Daemon::command(&daemon.state(), &daemon.dir.path("run2")).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("another handoff daemon uses this state directory"), "{err}");
        assert!(daemon.terminate().success());

        // The CLI's only command is not its argument: a usage error, exit 2.
        let out = Command::new(HANDOFFD).arg("daemon").output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument 'daemon'"));
        let out = Command::new(HANDOFFD).arg("--version").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("handoffd {}", env!("CARGO_PKG_VERSION")));
        // Nor does it carry the other commands' options.
        let out = Command::new(HANDOFFD).args(["--standalone"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
    }
}

/// Reads one frame from a blocking stream.
fn read_frame(s: &mut UnixStream) -> Option<ControlMessage> {
    let mut prefix = [0u8; 4];
    s.read_exact(&mut prefix).ok()?;
    let mut body = vec![0; u32::from_be_bytes(prefix) as usize];
    s.read_exact(&mut body).unwrap();
    let mut frame = prefix.to_vec();
    frame.extend(body);
    Some(decode(&frame).unwrap())
}

fn error_code_of(msg: Option<ControlMessage>) -> String {
    match msg {
        Some(ControlMessage::Error(e)) => e.code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

fn at_eof(s: &mut UnixStream) -> bool {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

lan_test! {
    fn bad_frames_get_an_error_frame_and_close_only_their_own_connection() {
        let daemon = Daemon::start();
        let socket = daemon.socket();
        let mut bystander = UnixStream::connect(&socket).unwrap();
        bystander.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

        let mut garbage = UnixStream::connect(&socket).unwrap();
        garbage.write_all(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd]).unwrap();
        assert_eq!(error_code_of(read_frame(&mut garbage)), error_code::MALFORMED);
        assert!(at_eof(&mut garbage));

        let mut oversized = UnixStream::connect(&socket).unwrap();
        oversized.write_all(&[0x7f, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(error_code_of(read_frame(&mut oversized)), error_code::TOO_LARGE);
        assert!(at_eof(&mut oversized));

        // An unknown kind, or an answer sent as a request, is answered, and
        // the connection stays.
        let mut curious = UnixStream::connect(&socket).unwrap();
        // ("reloaded" is an answer, not a request.)
        for (kind, code) in [("frobnicate", error_code::UNKNOWN_KIND), ("reloaded", error_code::UNKNOWN_KIND)] {
            let mut item = Vec::new();
            let map = ciborium::Value::Map(vec![
                (ciborium::Value::Text("k".into()), ciborium::Value::Text(kind.into())),
                (ciborium::Value::Text("r".into()), ciborium::Value::Integer(5.into())),
            ]);
            ciborium::into_writer(&map, &mut item).unwrap();
            curious.write_all(&(item.len() as u32).to_be_bytes()).unwrap();
            curious.write_all(&item).unwrap();
            assert_eq!(error_code_of(read_frame(&mut curious)), code);
        }
        curious.write_all(&encode(&ControlMessage::Health(Request { request: 6 })).unwrap()).unwrap();
        assert!(matches!(read_frame(&mut curious), Some(ControlMessage::HealthReport(h)) if h.request == 6));

        // The connection opened before all that is served as usual.
        bystander.write_all(&encode(&ControlMessage::Inventory(Request { request: 9 })).unwrap()).unwrap();
        match read_frame(&mut bystander) {
            Some(ControlMessage::Processors(p)) => assert_eq!((p.request, p.list.len(), p.more), (9, 0, false)),
            other => panic!("{other:?}"),
        }
        assert_eq!(daemon.health()["processors"], 0);
    }
}

lan_test! {
    fn systemd_hears_ready_once_the_socket_answers_then_watchdog_pings_and_stopping() {
        let _sim = Sim::start(&["--count", "2", "--seed", "93", "--no-probe"]);
        let dir = TempDir::new("notify");
        let notify_path = dir.path("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let socket = dir.path("run").join("handoff.sock");
        // handoffd: what the unit's ExecStart runs.
        let mut command = Daemon::command_alone(&dir.path("state"), &dir.path("run"));
        command
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "2000000")
            .stderr(Stdio::inherit());
        let child = command.spawn().unwrap();
        let daemon = Daemon { child: Some(child), dir };

        let recv = || {
            let mut buf = [0u8; 512];
            let n = notify.recv(&mut buf).expect("a notification");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        let first = recv();
        assert!(first.contains("READY=1\n"), "{first}");
        assert!(first.contains(" processors in the inventory"), "{first}");
        // READY came after the socket was up.
        assert!(UnixStream::connect(&socket).is_ok());
        // The STATUS line follows the inventory (the task that sends it
        // sleeps until the inventory changes).
        let mut seen = vec![first];
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.iter().any(|m| m.contains("STATUS=2 processors in the inventory")) {
            assert!(Instant::now() < deadline, "no STATUS with both processors: {seen:#?}");
            seen.push(recv());
        }
        while !seen.iter().any(|m: &String| m.contains("WATCHDOG=1")) {
            seen.push(recv());
        }
        let status = daemon.terminate();
        assert!(status.success());
        let mut last = String::new();
        while !last.contains("STOPPING=1") {
            last = recv();
        }
    }
}

/// The daemon's inventory size, asked through its socket.
async fn inventory_len(socket: &Path) -> usize {
    let mut client = handoff::daemon::connect(socket)
        .await
        .unwrap()
        .expect("the daemon answers");
    client.inventory().await.unwrap().len()
}

async fn wait_len(socket: &Path, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let len = inventory_len(socket).await;
        if len == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "inventory never reached {n} (at {len})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A second interface, `hv0`, with nobody on it (a veth pair inside the
/// test's own namespace), made after the simulator checked that its
/// network is private.
fn spare_interface() {
    for cmd in [
        "ip link add hv0 type veth peer name hv1",
        "ip link set hv0 up",
        "ip link set hv1 up",
    ] {
        let ok = Command::new("sh")
            .args(["-c", cmd])
            .status()
            .unwrap()
            .success();
        assert!(ok, "{cmd}");
    }
}

lan_test! {
    fn a_reload_with_other_interfaces_takes_effect_and_keeps_the_inventory_meanwhile() {
        use handoff::daemon::DaemonSettings;
        use handoff::shutdown::shutdown_channel;
        let sim = Sim::start(&["--count", "2", "--seed", "71", "--no-probe"]);
        spare_interface();
        let dir = TempDir::new("reload");
        let mut settings = DaemonSettings::new(dir.path("state"), dir.path("run"));
        settings.interfaces = vec!["lo".into()];
        settings.liveness = Duration::from_secs(6);
        let socket = settings.socket_path();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (trigger, shutdown) = shutdown_channel();
            let (reload, reloads) = tokio::sync::mpsc::channel(4);
            let daemon = tokio::spawn(handoff::daemon::run(settings.clone(), shutdown, reloads, None));
            while tokio::net::UnixStream::connect(&socket).await.is_err() {
                assert!(!daemon.is_finished(), "{:?}", daemon.await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            wait_len(&socket, 2, Duration::from_secs(15)).await;

            // Away from the fleet: kept at first, gone after the liveness bound.
            let away = DaemonSettings { interfaces: vec!["hv0".into()], ..settings.clone() };
            reload.send(away.into()).await.unwrap();
            assert_eq!(inventory_len(&socket).await, 2);
            wait_len(&socket, 0, Duration::from_secs(20)).await;

            // A reload naming an interface that does not exist changes nothing.
            let bad = DaemonSettings { interfaces: vec!["eth7".into()], ..settings.clone() };
            reload.send(bad.into()).await.unwrap();
            // Back to the fleet: found again.
            reload.send(settings.clone().into()).await.unwrap();
            wait_len(&socket, 2, Duration::from_secs(15)).await;

            trigger.fire();
            daemon.await.unwrap().unwrap();
        });
        assert!(!socket.exists());
        drop(sim);
    }
}

lan_test! {
    fn sighup_reads_the_configuration_again_and_a_new_interface_list_takes_effect() {
        let sim = Sim::start(&["--count", "2", "--seed", "81", "--no-probe"]);
        spare_interface();
        let dir = TempDir::new("sighup");
        let config = dir.path("state").with_extension("toml");
        std::fs::write(&config, "interfaces = [\"lo\"]\n").unwrap();
        let daemon = Daemon::start_with(dir, |_| {});
        daemon.wait_inventory(2, Duration::from_secs(15));
        let pid = nix::unistd::Pid::from_raw(daemon.child.as_ref().unwrap().id() as i32);
        let hup = || nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();

        // A refused file changes nothing, and the daemon keeps serving.
        std::fs::write(&config, "interfaces = [\"lo\"]\nintrefaces = []\n").unwrap();
        hup();
        assert_eq!(daemon.health()["processors"], 2);

        // Away from the fleet: the processors go once the liveness bound passes.
        std::fs::write(&config, "interfaces = [\"hv0\"]\n").unwrap();
        hup();
        daemon.wait_inventory(0, Duration::from_secs(20));
        std::fs::write(&config, "interfaces = [\"lo\"]\n").unwrap();
        hup();
        daemon.wait_inventory(2, Duration::from_secs(15));
        assert!(daemon.terminate().success());
        drop(sim);
    }
}

lan_test! {
    fn handoff_reload_returns_once_the_daemon_applied_the_file_and_fails_on_a_refused_one() {
        let sim = Sim::start(&["--count", "1", "--seed", "82", "--no-probe"]);
        let dir = TempDir::new("reload-cmd");
        let config = dir.path("state").with_extension("toml");
        std::fs::write(&config, "interfaces = [\"lo\"]\n").unwrap();
        let daemon = Daemon::start_with(dir, |_| {});
        daemon.wait_inventory(1, Duration::from_secs(15));

        // A refused file: exit 1 with the key and line; the daemon keeps going.
        std::fs::write(&config, "interfaces = [\"lo\"]\nliveness = \"30s\"\nbuton_timeout = \"1m\"\n").unwrap();
        let refused = daemon.cli(&["reload"]);
        assert_eq!(refused.code, Some(1), "{}", refused.stdout);
        assert!(refused.stderr.contains("kept its running settings"), "{}", refused.stderr);
        assert!(refused.stderr.contains("buton_timeout") && refused.stderr.contains(":3:"), "{}", refused.stderr);
        // A value the daemon itself refuses (below the liveness minimum).
        std::fs::write(&config, "interfaces = [\"lo\"]\nliveness = \"1s\"\n").unwrap();
        let refused = daemon.cli(&["reload", "--json"]);
        assert_eq!(refused.code, Some(1));
        assert_eq!(refused.json()["reloaded"], false, "{}", refused.stdout);
        assert_eq!(daemon.health()["processors"], 1);

        // An accepted one: applied by the time the command returns; what
        // needs a restart is named.
        std::fs::write(&config, "interfaces = [\"lo\"]\nbutton_timeout = \"1m\"\n").unwrap();
        let applied = daemon.cli(&["reload", "--json"]);
        assert_eq!(applied.code, Some(0), "{}", applied.stderr);
        assert_eq!(applied.json(), serde_json::json!({"reloaded": true, "later": []}));
        std::fs::write(&config, "interfaces = [\"lo\"]\n[cloud]\naddress = \"127.0.0.1:4433\"\n").unwrap();
        let later = daemon.cli(&["reload"]);
        assert_eq!(later.code, Some(0), "{}", later.stderr);
        assert!(later.stdout.contains("next restart: cloud"), "{}", later.stdout);
        assert_eq!(daemon.health()["processors"], 1, "inventory kept throughout");
        assert!(daemon.terminate().success());

        // Nobody to reload.
        let none = handoff(&["--runtime-dir", "/nonexistent/run", "reload"]);
        assert_eq!(none.code, Some(1));
        assert!(none.stderr.contains("no handoff daemon answers"), "{}", none.stderr);
        drop(sim);
    }
}

lan_test! {
    fn the_configurations_log_format_is_the_daemons_and_the_flag_wins() {
        let dir = TempDir::new("log-format");
        let config = dir.path("state").with_extension("toml");
        std::fs::write(&config, "log_format = \"json\"\ninterfaces = [\"lo\"]\n").unwrap();
        let mut daemon = Daemon::start_with(dir, |c| {
            c.stderr(Stdio::piped()).env_remove("JOURNAL_STREAM");
        });
        let mut stderr = daemon.child.as_mut().unwrap().stderr.take().unwrap();
        assert!(daemon.terminate().success());
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().any(|l| l.contains("daemon ready")), "{text}");
        for line in &lines {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(v["fields"]["message"].is_string() || v["message"].is_string(), "{line}");
        }

        // --log-format on the command line overrides the file.
        let dir = TempDir::new("log-format-flag");
        let config = dir.path("state").with_extension("toml");
        std::fs::write(&config, "log_format = \"json\"\ninterfaces = [\"lo\"]\n").unwrap();
        let mut daemon = Daemon::start_with(dir, |c| {
            c.stderr(Stdio::piped()).env_remove("JOURNAL_STREAM");
            // Global flags go before the subcommand's: rebuild the command.
            let args: Vec<std::ffi::OsString> = c.get_args().map(|a| a.to_owned()).collect();
            let mut fresh = Command::new(handoff_bin());
            fresh.args(["--log-format", "human"]).args(args)
                .env("HANDOFF_LOG", "info").env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC")
                .env_remove("JOURNAL_STREAM")
                .stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
            *c = fresh;
        });
        let mut stderr = daemon.child.as_mut().unwrap().stderr.take().unwrap();
        assert!(daemon.terminate().success());
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        let ready = text.lines().find(|l| l.contains("daemon ready")).unwrap_or_else(|| panic!("{text}"));
        assert!(serde_json::from_str::<Value>(ready).is_err() && ready.contains(" INFO "), "{ready}");
    }
}

lan_test! {
    fn the_journal_says_which_user_asked_the_daemon_to_act() {
        let dir = TempDir::new("peer-uid");
        let config = dir.path("state").with_extension("toml");
        std::fs::write(&config, "log_format = \"json\"\ninterfaces = [\"lo\"]\n").unwrap();
        let mut daemon = Daemon::start_with(dir, |c| {
            c.stderr(Stdio::piped()).env_remove("JOURNAL_STREAM");
        });
        assert_eq!(daemon.cli(&["reload"]).code, Some(0));
        // Reading changes nothing and is not logged as work.
        assert_eq!(daemon.cli(&["health"]).code, Some(0));
        let mut stderr = daemon.child.as_mut().unwrap().stderr.take().unwrap();
        assert!(daemon.terminate().success());
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        let asked: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "control socket: work asked")
            .collect();
        assert_eq!(asked.len(), 1, "{text}");
        let uid = nix::unistd::getuid().as_raw().to_string();
        assert_eq!(asked[0]["peer_uid"], Value::from(uid), "{}", asked[0]);
        assert_eq!(asked[0]["request"], "reload", "{}", asked[0]);
    }
}

lan_test! {
    /// Issue 15, attack 6: with `act_group`, a user outside it who may open
    /// the socket still reads (health) but cannot act (reload), and the
    /// refusal is logged with its uid. The tests run as root; the outsider
    /// is `nobody` through setpriv, the socket opened to it for the test.
    fn only_the_act_group_may_ask_the_daemon_to_act_and_refusals_are_logged() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("act-group");
        let config = dir.path("state").with_extension("toml");
        std::fs::write(&config, "log_format = \"json\"\ninterfaces = [\"lo\"]\nact_group = \"root\"\n")
            .unwrap();
        let mut daemon = Daemon::start_with(dir, |c| {
            c.stderr(Stdio::piped()).env_remove("JOURNAL_STREAM");
        });
        let open = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
        open(&daemon.run_dir(), 0o755).unwrap();
        open(&daemon.socket(), 0o666).unwrap();
        let as_nobody = |args: &[&str]| {
            Command::new("setpriv")
                .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", handoff_bin()])
                .arg("--runtime-dir")
                .arg(daemon.run_dir())
                .args(args)
                .env("HOME", "/nonexistent")
                .output()
                .unwrap()
        };
        let health = as_nobody(&["health"]);
        assert!(health.status.success(), "{}", String::from_utf8_lossy(&health.stderr));
        let reload = as_nobody(&["reload"]);
        let said = String::from_utf8_lossy(&reload.stderr).into_owned();
        assert_eq!(reload.status.code(), Some(1), "{said}");
        assert!(said.contains("only members of group root"), "{said}");
        // Root, in the group, still may.
        assert_eq!(daemon.cli(&["reload"]).code, Some(0));

        let mut stderr = daemon.child.as_mut().unwrap().stderr.take().unwrap();
        assert!(daemon.terminate().success());
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        let refused: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "control socket: refused a request to act from outside act_group")
            .collect();
        assert_eq!(refused.len(), 1, "{text}");
        assert_eq!(refused[0]["peer_uid"], "65534", "{}", refused[0]);
        assert_eq!(refused[0]["request"], "reload", "{}", refused[0]);
    }
}
