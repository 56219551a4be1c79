//! What the manual pages say beyond the options clap knows: EXAMPLES, EXIT
//! STATUS and FILES. An integrator on site reads the page, not the source:
//! the exit codes a script must handle and the files that hold secrets
//! belong there. Kept next to the generator (docs.rs) and checked by its
//! tests.

/// The extra sections of one page.
#[derive(Default)]
pub struct Sections {
    /// (what it does, the command line).
    pub examples: &'static [(&'static str, &'static str)],
    /// (code, meaning), after the codes every command shares.
    pub exit: &'static [(&'static str, &'static str)],
    /// (path, what it holds).
    pub files: &'static [(&'static str, &'static str)],
}

/// The codes every command shares.
pub const COMMON_EXIT: &[(&str, &str)] = &[
    ("0", "Success."),
    (
        "1",
        "Failure: one line on stderr says what happened and what to do next.",
    ),
    (
        "2",
        "Usage error: an argument that cannot work (an unknown option, a zero \
         --timeout, an empty PROCESSOR, a processor name one typo from a processor \
         that answered), said on stderr; nothing was done.",
    ),
];

const CREDENTIALS: (&str, &str) = (
    "STATE_DIR/credentials/SERIAL/",
    "A claimed processor's credential: key.pem (0600, in a 0700 directory), \
     cert.pem, processor-ca.pem, server-identity.pem (the main port's key, pinned at \
     the claim) and claim.json.",
);
const PAIRING_IDENTITY: (&str, &str) = (
    "STATE_DIR/pairing-identity/",
    "The identity shown on a processor's pairing port: client-key.pem, \
     client-cert.pem, authority-ca.pem (--pairing-identity DIR names another).",
);
const CLOUD_IDENTITY: (&str, &str) = (
    "STATE_DIR/cloud-identity/",
    "The site's bundle from `handoff cloud enroll`, for talking to the cloud \
     (--cloud-identity DIR names another).",
);
const OUTBOX: (&str, &str) = (
    "STATE_DIR/outbox.redb",
    "Events for the cloud, kept until it acknowledges them (a running daemon \
     that relays owns it).",
);
const TAKEOVER: (&str, &str) = (
    "STATE_DIR/takeover/SERIAL.json",
    "A takeover in progress: how far it got, so running the command again \
     continues it without a second claim.",
);
const SOCKET: (&str, &str) = (
    "RUNTIME_DIR/handoff.sock",
    "The daemon's control socket ($RUNTIME_DIRECTORY under systemd, else \
     $XDG_RUNTIME_DIR/handoff, else the state directory; /run/handoff/handoff.sock \
     is also tried). Commands use the daemon through it when it runs.",
);
const CONFIG: (&str, &str) = (
    "/etc/handoff/handoff.toml",
    "The daemon's configuration ($CONFIGURATION_DIRECTORY/handoff.toml under \
     systemd; --config FILE names another; `handoff config check` checks it).",
);
const LOCK: (&str, &str) = (
    "STATE_DIR/daemon.lock",
    "Held by the running daemon: one daemon per state directory.",
);
const STATE_DIR: (&str, &str) = (
    "STATE_DIR",
    "--state-dir, else $STATE_DIRECTORY under systemd, else \
     $XDG_STATE_HOME/handoff or ~/.local/state/handoff.",
);

/// The daemon's exit codes and files: `handoff daemon` and `handoffd` are
/// one program.
const DAEMON_EXIT: &[(&str, &str)] = &[
    ("0", "Stopped by SIGTERM or SIGINT (Ctrl-C)."),
    (
        "1",
        "Could not start (another daemon holds the state directory or answers \
         on the socket, no usable interface, a refused configuration) or \
         discovery stopped.",
    ),
];
const DAEMON_FILES: &[(&str, &str)] = &[
    CONFIG,
    SOCKET,
    LOCK,
    OUTBOX,
    CLOUD_IDENTITY,
    PAIRING_IDENTITY,
    CREDENTIALS,
];

/// The extra sections of the page named `page` ("handoff",
/// "handoff-claim"…); every page gets at least the common exit codes.
pub fn sections(page: &str) -> Sections {
    match page {
        "handoff" => Sections {
            examples: &[
                (
                    "See the whole story on a private network, no hardware needed:",
                    "handoff demo",
                ),
                ("List the processors on this network:", "handoff discover"),
                (
                    "Claim one with its button, then check its cloud state:",
                    "handoff claim 0236e6a7\nhandoff status 0236e6a7 --cloud cloud.example.com:4433",
                ),
                (
                    "Try everything against simulated processors, in a private network that \
                     vanishes with the command:",
                    "handoff lan -- sh -c 'handoff sim --count 3 & sim=$!; sleep 1; \
                     handoff discover; kill $sim'",
                ),
            ],
            exit: &[
                (
                    "3",
                    "Refused by one of the vendor's rules (takeover, the cloud commands, \
                     an event the cloud refused); the rule and what to do are on stderr.",
                ),
                (
                    "4",
                    "The cloud did not answer in time; the events stay queued and running \
                     the command again continues (relay, takeover).",
                ),
                (
                    "130",
                    "Interrupted (Ctrl-C) before anything was stored (claim, takeover).",
                ),
            ],
            files: &[
                STATE_DIR,
                CREDENTIALS,
                PAIRING_IDENTITY,
                CLOUD_IDENTITY,
                OUTBOX,
                TAKEOVER,
                SOCKET,
                CONFIG,
            ],
        },
        "handoff-discover" => Sections {
            examples: &[
                (
                    "A table of every processor that answers within 3 s:",
                    "handoff discover",
                ),
                (
                    "The same as JSON, on one interface:",
                    "handoff discover --json --interface eth0",
                ),
                ("Follow changes until Ctrl-C:", "handoff discover --watch"),
                (
                    "Ask one address directly where multicast does not pass:",
                    "handoff discover --host 192.168.1.20",
                ),
            ],
            exit: &[(
                "0",
                "Also when no processor answered (said on stderr), unless --expect asked \
                 for more.",
            )],
            files: &[SOCKET],
        },
        "handoff-claim" => Sections {
            examples: &[
                (
                    "Claim the processor with id 0236e6a7 (press its button when asked):",
                    "handoff claim 0236e6a7",
                ),
                (
                    "By MAC address (any form, also a switch's 024c.0236.e6a7), at a known address:",
                    "handoff claim 02:4c:02:36:e6:a7 --address 192.168.1.20",
                ),
                (
                    "Also write the files Home Assistant and pylutron-caseta read:",
                    "handoff claim 0236e6a7 --export-dir ha",
                ),
            ],
            exit: &[(
                "130",
                "Interrupted (Ctrl-C) before the credential was stored: nothing was kept.",
            )],
            files: &[CREDENTIALS, PAIRING_IDENTITY, OUTBOX, SOCKET],
        },
        "handoff-status" => Sections {
            examples: &[
                (
                    "The cloud state of the processor at 192.168.1.20, for the enrolled account:",
                    "handoff status 192.168.1.20 --cloud cloud.example.com:4433",
                ),
                (
                    "Events still waiting for the cloud, as JSON:",
                    "handoff status --relay --json",
                ),
            ],
            exit: &[],
            files: &[CLOUD_IDENTITY, OUTBOX, SOCKET],
        },
        "handoff-takeover" => Sections {
            examples: &[(
                "Claim, share to the pro account for 7 days and release the home:",
                "handoff takeover 0236e6a7 --share-to pro@example.com --for 7d \
                 --cloud cloud.example.com:4433",
            )],
            exit: &[
                (
                    "3",
                    "Not taken over: the cloud state or one of the vendor's rules does not \
                     allow it (which, and what to do instead, on stderr).",
                ),
                (
                    "4",
                    "A step is queued but the cloud has not answered: run the same command \
                     again to continue; nothing is claimed twice.",
                ),
                (
                    "130",
                    "Cancelled (Ctrl-C) before the claim: nothing changed.",
                ),
            ],
            files: &[
                TAKEOVER,
                CREDENTIALS,
                PAIRING_IDENTITY,
                CLOUD_IDENTITY,
                OUTBOX,
                SOCKET,
            ],
        },
        "handoff-daemon" => Sections {
            examples: &[
                (
                    "Run it in a terminal, on one interface:",
                    "handoff daemon --interface eth0",
                ),
                (
                    "As a service (the unit in systemd/ runs it), then ask how it is doing:",
                    "systemctl start handoff\nhandoff health",
                ),
            ],
            exit: DAEMON_EXIT,
            files: DAEMON_FILES,
        },
        "handoffd" => Sections {
            examples: &[
                (
                    "As the unit runs it (systemd/handoff.service), then ask how it is doing:",
                    "systemctl start handoff\nhandoff health",
                ),
                (
                    "By hand, in a terminal, on one interface (as `handoff daemon`):",
                    "handoffd --interface eth0",
                ),
            ],
            exit: DAEMON_EXIT,
            files: DAEMON_FILES,
        },
        "handoff-health" => Sections {
            examples: &[("For a monitoring script:", "handoff health --json")],
            exit: &[
                (
                    "1",
                    "No daemon answers (with --json, {\"running\": false, …} on stdout), \
                     or another failure.",
                ),
                (
                    "2",
                    "The relay is stuck: an event waited longer than --stuck-after; or a \
                     usage error.",
                ),
            ],
            files: &[SOCKET],
        },
        "handoff-relay" => Sections {
            exit: &[(
                "4",
                "Events are still queued (the cloud did not answer in time).",
            )],
            files: &[OUTBOX, CLOUD_IDENTITY],
            ..Sections::default()
        },
        "handoff-release" => Sections {
            files: &[CREDENTIALS, OUTBOX],
            ..Sections::default()
        },
        "handoff-lan" => Sections {
            examples: &[(
                "Three simulated processors and a discovery, in a network that vanishes \
                 afterwards:",
                "handoff lan -- sh -c 'handoff sim --count 3 & sim=$!; sleep 1; \
                 handoff discover; kill $sim'",
            )],
            exit: &[(
                "",
                "CMD's own exit code; 1 when the network cannot be made.",
            )],
            ..Sections::default()
        },
        _ => Sections::default(),
    }
}

/// Text for roff: backslashes and hyphens escaped, and no line starting
/// with a control character.
fn roff_text(s: &str) -> String {
    s.replace('\\', "\\e")
        .replace('-', "\\-")
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The roff of the EXAMPLES, EXIT STATUS and FILES sections of `page`.
pub fn render(page: &str) -> String {
    let s = sections(page);
    let mut out = String::new();
    if !s.examples.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        for (what, command) in s.examples {
            out.push_str(&format!(
                ".PP\n{}\n.PP\n.RS 4\n.nf\n\\fB{}\\fR\n.fi\n.RE\n",
                roff_text(what),
                roff_text(command)
            ));
        }
    }
    out.push_str(".SH \"EXIT STATUS\"\n");
    // A page's own meaning for a common code replaces the common one.
    let own = |code: &str| s.exit.iter().any(|(c, _)| *c == code);
    let common = COMMON_EXIT.iter().filter(|(code, _)| !own(code));
    let mut codes: Vec<&(&str, &str)> = common.chain(s.exit.iter()).collect();
    codes.sort_by_key(|(code, _)| code.parse::<u32>().unwrap_or(0));
    for (code, meaning) in codes {
        let code = if code.is_empty() { "CMD" } else { code };
        out.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", roff_text(meaning)));
    }
    if !s.files.is_empty() {
        out.push_str(".SH FILES\n");
        for (path, what) in s.files {
            out.push_str(&format!(
                ".TP\n\\fI{}\\fR\n{}\n",
                roff_text(path),
                roff_text(what)
            ));
        }
    }
    out
}
