//! `handoff sim press PROCESSOR`: the button of a running fleet, pressed
//! from another process through the fleet's control socket, each test on
//! its own private network.

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sim, TempDir, handoff, handoff_bin};
use handoff::identity::PairingIdentity;
use handoff::leap::Connection;
use handoff::leap::message::PairingFrame;
use handoff::sim::CONTROL_SOCKET;
use handoff::tls;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const PAIRING_PORT: u16 = 8083;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn address(p: &Value) -> IpAddr {
    p["addresses"][0].as_str().unwrap().parse().unwrap()
}

/// A client connected to a processor's pairing port, waiting for the press.
async fn waiting_client(state_dir: &Path, ip: IpAddr) -> Connection<TlsStream<TcpStream>> {
    let identity =
        PairingIdentity::load(&common::sim_identity_dir(state_dir)).expect("exported identity");
    let config = tls::pairing_client_config(&identity).unwrap();
    let tcp = TcpStream::connect((ip, PAIRING_PORT))
        .await
        .expect("pairing port");
    let tls = TlsConnector::from(config)
        .connect(tls::processor_server_name(ip), tcp)
        .await
        .expect("TLS on the pairing port");
    Connection::new(tls)
}

/// The first frame within `limit`, or `None` if nothing came.
async fn first_frame(
    conn: &mut Connection<TlsStream<TcpStream>>,
    limit: Duration,
) -> Option<PairingFrame> {
    let object = tokio::time::timeout(limit, conn.read_frame()).await.ok()?;
    let object = object
        .expect("a readable frame")
        .expect("a frame, not the end");
    Some(PairingFrame::from_object(object).expect("a pairing frame"))
}

fn press(sim: &Sim, processor: &str) -> common::Run {
    let state_dir = sim.state_dir.to_str().unwrap();
    handoff(&["sim", "press", processor, "--state-dir", state_dir])
}

lan_test! {
    fn a_waiting_client_gets_physical_access_only_after_sim_press() {
        let sim = Sim::start(&["--count", "2", "--no-probe"]);
        let ip = address(&sim.manifest[0]);
        let id = sim.manifest[0]["id"].as_str().unwrap().to_string();
        let other_mac = sim.manifest[1]["mac"].as_str().unwrap().to_string();
        block_on(async {
            let mut conn = waiting_client(&sim.state_dir, ip).await;
            assert_eq!(first_frame(&mut conn, Duration::from_millis(800)).await, None,
                "nothing before the press");

            // The other processor's button opens only the other processor.
            let run = press(&sim, &other_mac);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            assert_eq!(first_frame(&mut conn, Duration::from_millis(500)).await, None,
                "pressing another processor's button");

            let run = press(&sim, &id);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            assert!(run.stdout.contains(&id), "{}", run.stdout);
            let frame = first_frame(&mut conn, Duration::from_secs(5)).await;
            assert_eq!(frame, Some(PairingFrame::physical_access()));
        });

        // A fleet that lost power leaves its socket behind: nobody answers,
        // and the next fleet on that state directory takes it over.
        let state = TempDir::new("press-state");
        let state_dir = state.0.to_str().unwrap();
        sim.kill();
        let sim = Sim::start(&["--count", "1", "--no-probe", "--state-dir", state_dir]);
        let id = sim.manifest[0]["id"].as_str().unwrap().to_string();
        sim.kill();
        assert!(state.0.join(CONTROL_SOCKET).exists(), "a stale socket");
        let run = handoff(&["sim", "press", &id, "--state-dir", state_dir]);
        assert_eq!(run.code, Some(1), "{}", run.stdout);
        assert!(run.stderr.contains("no simulator is running"), "{}", run.stderr);
        let sim = Sim::start(&["--count", "1", "--no-probe", "--state-dir", state_dir]);
        assert_eq!(press(&sim, &id).code, Some(0));
    }
}

lan_test! {
    fn sim_press_names_processors_by_serial_mac_or_ip_and_refuses_others() {
        let sim = Sim::start(&["--count", "1", "--no-probe"]);
        let p = &sim.manifest[0];
        let id = p["id"].as_str().unwrap();
        let socket = sim.state_dir.join(CONTROL_SOCKET);
        let mode = std::fs::metadata(&socket).expect("control socket").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its user may press");

        let serial = p["serial"].as_u64().unwrap().to_string();
        let mac = p["mac"].as_str().unwrap().to_uppercase();
        let ip = address(p).to_string();
        for name in [serial.as_str(), mac.as_str(), ip.as_str()] {
            let run = press(&sim, name);
            assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
            assert!(run.stdout.contains(id), "{name}: {}", run.stdout);
        }

        let run = press(&sim, "127.0.9.9");
        assert_eq!(run.code, Some(1), "{}", run.stdout);
        assert!(run.stderr.contains("no simulated processor is \"127.0.9.9\""), "{}", run.stderr);
        assert!(run.stderr.contains(id), "lists the fleet: {}", run.stderr);

        let elsewhere = TempDir::new("no-fleet");
        let run = handoff(&["sim", "press", id, "--state-dir", elsewhere.0.to_str().unwrap()]);
        assert_eq!(run.code, Some(1), "{}", run.stdout);
        assert!(run.stderr.contains("no simulator is running"), "{}", run.stderr);

        // A second fleet on the same state directory is refused: its
        // presses would go to the wrong one.
        let state_dir = sim.state_dir.to_str().unwrap();
        let run = handoff(&[
            "sim", "--count", "1", "--no-probe", "--first-ip", "127.0.2.1",
            "--state-dir", state_dir,
        ]);
        assert_eq!(run.code, Some(1), "{}", run.stdout);
        assert!(run.stderr.contains("already running"), "{}", run.stderr);
        sim.stop();
        assert!(!socket.exists(), "the socket goes with the fleet");
    }
}

/// `handoff sim` with a terminal for its stdin, made by script(1), as when
/// someone runs it in a shell. Dropping it kills it.
struct SimInTerminal {
    script: Child,
}

impl SimInTerminal {
    fn type_line(&mut self, text: &str) {
        let stdin = self.script.stdin.as_mut().expect("script's stdin");
        stdin
            .write_all(text.as_bytes())
            .expect("type into the terminal");
        stdin.flush().expect("type into the terminal");
    }
}

impl Drop for SimInTerminal {
    fn drop(&mut self) {
        let _ = self.script.kill();
        let _ = self.script.wait();
    }
}

lan_test! {
    fn enter_in_the_simulators_terminal_presses_its_buttons() {
        let dir = TempDir::new("sim-terminal");
        let state_dir = dir.path("state");
        let manifest = dir.path("manifest.json");
        // `exec`: script(1) runs the command with $SHELL -c, and a shell left
        // waiting in between (dash) dies of the Ctrl-C itself.
        let command = format!(
            "exec {} sim --count 2 --no-probe --state-dir {} --manifest {}",
            handoff_bin(),
            state_dir.display(),
            manifest.display()
        );
        let script = Command::new("script")
            .args(["--quiet", "--flush", "--return", "--command", &command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("script(1) from util-linux");
        let mut sim = SimInTerminal { script };
        let deadline = Instant::now() + Duration::from_secs(20);
        let fleet: Vec<Value> = loop {
            if let Ok(text) = std::fs::read_to_string(&manifest) {
                break serde_json::from_str(&text).expect("manifest is JSON");
            }
            assert!(Instant::now() < deadline, "handoff sim wrote no manifest");
            std::thread::sleep(Duration::from_millis(20));
        };
        let second_id = fleet[1]["id"].as_str().unwrap().to_string();
        block_on(async {
            let mut first = waiting_client(&state_dir, address(&fleet[0])).await;
            let mut second = waiting_client(&state_dir, address(&fleet[1])).await;
            assert_eq!(first_frame(&mut first, Duration::from_millis(800)).await, None,
                "nothing before a key press");

            sim.type_line(&format!("{second_id}\n"));
            assert_eq!(first_frame(&mut second, Duration::from_secs(5)).await,
                Some(PairingFrame::physical_access()), "an id then Enter presses that one");
            assert_eq!(first_frame(&mut first, Duration::from_millis(500)).await, None,
                "and no other");

            sim.type_line("\n");
            assert_eq!(first_frame(&mut first, Duration::from_secs(5)).await,
                Some(PairingFrame::physical_access()), "Enter alone presses every button");
        });
        // Ctrl-C in its terminal stops it as usual.
        sim.type_line("\u{3}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = sim.script.try_wait().expect("wait for script") {
                break status;
            }
            assert!(Instant::now() < deadline, "handoff sim ignored Ctrl-C in its terminal");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "handoff sim exited with {status} after Ctrl-C");
    }
}
