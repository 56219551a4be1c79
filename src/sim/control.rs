//! The running fleet's control socket, so that `handoff sim press
//! PROCESSOR` can press a button from another terminal, as a technician
//! would walk to the closet.
//!
//! A Unix socket in the fleet's state directory, mode 0600: only the user
//! running the simulator may press. One request line, one answer line:
//! `press <id|serial|mac|ip>` → `ok <id>` or `error <reason>`.
//!
//! When the simulator runs in a terminal, [`press_from_terminal`] takes
//! Enter (every button) or a name then Enter (one) from its stdin.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

use std::sync::Arc;

use super::live_house::HouseSlot;
use super::{PairingPort, SimProcessor};
use crate::processor::{Mac, Serial};

/// The socket's path under the state directory: in the simulator's own
/// `sim/`, with the rest of its files.
pub const CONTROL_SOCKET: &str = "sim/sim.sock";

/// How long a client may take to send its request, and the simulator to
/// answer it.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest request line the simulator reads.
const MAX_LINE: u64 = 1024;

/// Why the control socket could not serve or be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error(
        "a simulator is already running with this state directory ({0} answers); stop it \
         or pass another --state-dir"
    )]
    AlreadyRunning(PathBuf),
    #[error("cannot open the control socket {path}: {source}")]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no simulator is running with this state directory (nothing answers on {path}): \
         start one with `handoff sim`, with the same --state-dir"
    )]
    NotRunning { path: PathBuf },
    #[error("talking to the simulator over {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the simulator did not answer over {0} in time")]
    Timeout(PathBuf),
    #[error("{0}")]
    Refused(String),
}

/// The buttons of a running fleet, by processor.
#[derive(Clone)]
pub struct Buttons {
    processors: Vec<(SimProcessor, PairingPort, Arc<HouseSlot>)>,
}

impl Buttons {
    pub(super) fn new(processors: Vec<(SimProcessor, PairingPort, Arc<HouseSlot>)>) -> Buttons {
        Buttons { processors }
    }

    /// The processor `name` means: its id (8 hex digits), serial
    /// (decimal), MAC or IP address. An id wins over a serial written
    /// with the same digits.
    pub fn find(&self, name: &str) -> Option<&(SimProcessor, PairingPort, Arc<HouseSlot>)> {
        let name = name.trim();
        if let Some(found) = self
            .processors
            .iter()
            .find(|(p, _, _)| p.serial.id().eq_ignore_ascii_case(name))
        {
            return Some(found);
        }
        let serial = name.parse::<Serial>().ok();
        let mac = name.parse::<Mac>().ok();
        let ip = name.parse::<IpAddr>().ok();
        self.processors.iter().find(|(p, _, _)| {
            serial == Some(p.serial) || mac == Some(p.mac) || ip == Some(IpAddr::V4(p.address))
        })
    }

    /// Presses the button of the processor `name` means; returns how to
    /// call it, or why there is none.
    pub fn press(&self, name: &str) -> Result<String, String> {
        match self.find(name) {
            Some((p, port, _)) => {
                port.press();
                tracing::info!(id = %p.serial.id(), serial = %p.serial, mac = %p.mac, "button pressed");
                Ok(format!(
                    "{} (serial {}, {})",
                    p.serial.id(),
                    p.serial,
                    p.address
                ))
            }
            None => Err(self.unknown(name)),
        }
    }

    fn unknown(&self, name: &str) -> String {
        let known: Vec<String> = self
            .processors
            .iter()
            .map(|(p, _, _)| p.serial.id())
            .collect();
        format!(
            "no simulated processor is {:?}; this fleet has {}",
            name.trim(),
            known.join(", ")
        )
    }

    fn house(&self, name: &str) -> Result<&HouseSlot, String> {
        self.find(name)
            .map(|(_, _, house)| &**house)
            .ok_or_else(|| self.unknown(name))
    }

    /// Presses every processor's button.
    pub fn press_all(&self) {
        for (_, port, _) in &self.processors {
            port.press();
        }
    }

    /// Answers one request line.
    fn answer(&self, line: &str) -> String {
        let line = line.trim_end_matches(['\r', '\n']);
        let fields: Vec<&str> = line.split('\t').collect();
        let result = match fields.as_slice() {
            ["press-keypad", processor, device, button] => self
                .house(processor)
                .and_then(|h| h.live().press_keypad(device, button)),
            ["occupancy", processor, area, state] => self.house(processor).and_then(|h| {
                let occupied = match *state {
                    "occupied" => true,
                    "unoccupied" => false,
                    other => {
                        return Err(format!(
                            "occupancy is occupied or unoccupied, not {other:?}"
                        ));
                    }
                };
                let area: u32 = area
                    .parse()
                    .map_err(|_| format!("area {area:?} is no id"))?;
                h.live()
                    .set_occupancy(area, occupied)
                    .map(|()| format!("area {area} {state}"))
                    .map_err(|e| format!("{e} (no area with a sensor has id {area})"))
            }),
            [one] => match one.trim().split_once(' ') {
                Some(("press", name)) => self.press(name),
                Some(("house", name)) => self.house(name).and_then(|h| {
                    serde_json::to_string(&*h.live().lock()).map_err(|e| e.to_string())
                }),
                _ => Err(format!(
                    "unknown request {:?}; expected 'press PROCESSOR', 'house PROCESSOR', \
                     press-keypad or occupancy",
                    line.trim()
                )),
            },
            _ => Err(format!("unknown request {:?}", line.trim())),
        };
        match result {
            Ok(what) => format!("ok {what}"),
            Err(reason) => format!("error {reason}"),
        }
    }
}

/// Presses buttons from the simulator's own terminal: Enter alone presses
/// every processor's button, a name then Enter presses that one. Reads
/// on a thread of its own, which a blocked read cannot keep the process
/// from exiting; ends with stdin.
pub fn press_from_terminal(buttons: Buttons) {
    std::thread::spawn(move || {
        let mut line = String::new();
        loop {
            line.clear();
            match std::io::stdin().read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let name = line.trim();
            if name.is_empty() {
                buttons.press_all();
                eprintln!("handoff sim: pressed every button");
                continue;
            }
            match buttons.press(name) {
                Ok(pressed) => eprintln!("handoff sim: pressed the button of {pressed}"),
                Err(reason) => eprintln!("handoff sim: {reason}"),
            }
        }
    });
}

/// The listening control socket. Dropping it stops serving; [`stop`]
/// also removes the socket file.
///
/// [`stop`]: ControlSocket::stop
pub struct ControlSocket {
    path: PathBuf,
    tasks: JoinSet<()>,
}

impl ControlSocket {
    /// Listens on `state_dir/sim/sim.sock`, replacing a stale socket left
    /// by a simulator that died. `state_dir/sim/` must be the simulator's
    /// ([`crate::identity::sim_dir`]).
    ///
    /// # Errors
    /// [`ControlError::AlreadyRunning`] if another simulator answers there;
    /// [`ControlError::Listen`] if the socket cannot be made.
    pub async fn start(state_dir: &Path, buttons: Buttons) -> Result<ControlSocket, ControlError> {
        let path = state_dir.join(CONTROL_SOCKET);
        let listen_error = |source| ControlError::Listen {
            path: path.clone(),
            source,
        };
        if path.exists() {
            if UnixStream::connect(&path).await.is_ok() {
                return Err(ControlError::AlreadyRunning(path));
            }
            std::fs::remove_file(&path).map_err(listen_error)?;
        }
        let listener = UnixListener::bind(&path).map_err(listen_error)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(listen_error)?;
        let mut tasks = JoinSet::new();
        tasks.spawn(serve(listener, buttons));
        Ok(ControlSocket { path, tasks })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving and removes the socket.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve(listener: UnixListener, buttons: Buttons) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let buttons = buttons.clone();
        connections.spawn(async move {
            if let Err(e) = tokio::time::timeout(CONTROL_TIMEOUT, serve_one(stream, &buttons)).await
            {
                tracing::info!("control socket: client too slow: {e}");
            }
        });
    }
}

async fn serve_one(stream: UnixStream, buttons: &Buttons) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE));
    if let Err(e) = reader.read_line(&mut line).await {
        tracing::info!("control socket: unreadable request: {e}");
        return;
    }
    let mut answer = buttons.answer(&line);
    answer.push('\n');
    if let Err(e) = write.write_all(answer.as_bytes()).await {
        tracing::info!("control socket: cannot answer: {e}");
    }
}

/// Presses the button of `processor` in the fleet running with
/// `state_dir`; returns the simulator's description of it.
///
/// # Errors
/// [`ControlError::NotRunning`] without a running fleet;
/// [`ControlError::Refused`] for a processor the fleet does not have.
pub async fn press(state_dir: &Path, processor: &str) -> Result<String, ControlError> {
    ask(
        state_dir,
        &format!("press {}", one_line(processor)),
        MAX_LINE,
    )
    .await
}

/// Presses and releases `button` (number, id or engraving) of the keypad
/// `device` (id, serial or name) of `processor`.
///
/// # Errors
/// As [`press`]; [`ControlError::Refused`] names what the house has.
pub async fn press_keypad(
    state_dir: &Path,
    processor: &str,
    device: &str,
    button: &str,
) -> Result<String, ControlError> {
    let request = format!(
        "press-keypad\t{}\t{}\t{}",
        one_field(processor),
        one_field(device),
        one_field(button)
    );
    ask(state_dir, &request, MAX_LINE).await
}

/// Makes an area with a sensor occupied or not.
///
/// # Errors
/// As [`press_keypad`].
pub async fn set_occupancy(
    state_dir: &Path,
    processor: &str,
    area: u32,
    occupied: bool,
) -> Result<String, ControlError> {
    let state = if occupied { "occupied" } else { "unoccupied" };
    let request = format!("occupancy\t{}\t{area}\t{state}", one_field(processor));
    ask(state_dir, &request, MAX_LINE).await
}

/// The current house of `processor`, as JSON.
///
/// # Errors
/// As [`press`].
pub async fn house(state_dir: &Path, processor: &str) -> Result<String, ControlError> {
    ask(
        state_dir,
        &format!("house {}", one_line(processor)),
        MAX_ANSWER,
    )
    .await
}

/// Longest answer read back: a house of thousands of devices.
const MAX_ANSWER: u64 = 64 << 20;

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn one_field(s: &str) -> String {
    s.replace(['\r', '\n', '\t'], " ")
}

/// One request, one answer line.
async fn ask(state_dir: &Path, request: &str, max_answer: u64) -> Result<String, ControlError> {
    let path = state_dir.join(CONTROL_SOCKET);
    let exchange = async {
        let mut stream =
            UnixStream::connect(&path)
                .await
                .map_err(|source| match source.kind() {
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                        ControlError::NotRunning { path: path.clone() }
                    }
                    _ => ControlError::Io {
                        path: path.clone(),
                        source,
                    },
                })?;
        let io_error = |source| ControlError::Io {
            path: path.clone(),
            source,
        };
        stream
            .write_all(format!("{request}\n").as_bytes())
            .await
            .map_err(io_error)?;
        let mut line = String::new();
        BufReader::new(tokio::io::AsyncReadExt::take(stream, max_answer))
            .read_line(&mut line)
            .await
            .map_err(io_error)?;
        Ok(line.trim().to_owned())
    };
    let answer = tokio::time::timeout(CONTROL_TIMEOUT, exchange)
        .await
        .map_err(|_| ControlError::Timeout(path.clone()))??;
    if let Some(ok) = answer.strip_prefix("ok ") {
        return Ok(ok.to_owned());
    }
    match answer.strip_prefix("error ") {
        Some(reason) => Err(ControlError::Refused(reason.to_owned())),
        None => Err(ControlError::Io {
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unexpected answer {answer:?}"),
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_press_requests_are_understood() {
        let buttons = Buttons::new(Vec::new());
        assert!(
            buttons
                .answer("hello\n")
                .starts_with("error unknown request")
        );
        assert!(
            buttons
                .answer("pressx\n")
                .starts_with("error unknown request")
        );
        let answer = buttons.answer("press 0123abcd\n");
        assert!(
            answer.starts_with("error no simulated processor is \"0123abcd\""),
            "{answer}"
        );
    }
}
