//! The binary's configuration check, log formats, completions and manual,
//! run as a user would run them. No network: nothing here needs a
//! namespace.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};

fn handoff(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handoff"));
    cmd.args(args)
        .env_remove("HANDOFF_LOG")
        .env_remove("HANDOFF_LOG_FORMAT")
        .env_remove("JOURNAL_STREAM")
        .env_remove("CONFIGURATION_DIRECTORY")
        .env("HANDOFF_STATE_DIR", "/var/lib/handoff-test");
    cmd
}

fn run(args: &[&str]) -> Output {
    handoff(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_check_prints_the_effective_configuration_of_the_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/handoff.example.toml");
    let out = run(&["config", "check", "--json", example]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["found"], true);
    assert_eq!(v["config"]["state_dir"], "/var/lib/handoff-test");
    assert_eq!(
        v["config"]["pairing_identity"],
        "/var/lib/handoff-test/pairing-identity"
    );
    assert_eq!(v["config"]["liveness"], "30s");
    assert!(v["config"]["cloud"].get("address").is_none());
}

#[test]
fn config_check_without_home_names_the_units_state_directory_instead_of_failing() {
    // A root shell in a container or a package script has no HOME: the
    // file is still fine, and the daemon gets its directory from systemd.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/handoff.example.toml");
    let bare = |json: bool| {
        let mut cmd = handoff(&["config", "check", example]);
        if json {
            cmd.arg("--json");
        }
        cmd.env_remove("HANDOFF_STATE_DIR")
            .env_remove("HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("STATE_DIRECTORY")
            .output()
            .unwrap()
    };
    let out = bare(true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["state_dir_from_unit"], true);
    assert_eq!(v["config"]["state_dir"], "/var/lib/handoff");
    let out = bare(false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("$STATE_DIRECTORY"),
        "{}",
        text(&out.stdout)
    );

    // Where something names it, that wins and nothing is said of the unit.
    let out = run(&["config", "check", "--json", example]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state_dir_from_unit"], false);
    assert_eq!(v["config"]["state_dir"], "/var/lib/handoff-test");
}

#[test]
fn config_check_refuses_an_unknown_key_with_exit_2_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handoff.toml");
    std::fs::write(
        &path,
        "# site box\n[cloud]\naddress = \"c.example:4433\"\nidentiy = \"/x\"\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let out = run(&["config", "check", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: {path}:4:1: unknown key `cloud.identiy`")),
        "{err}"
    );

    let out = run(&["config", "check", "--json", path]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"]["line"], 4);
    assert_eq!(v["error"]["key"], "cloud.identiy");
}

#[test]
fn config_check_of_a_missing_file_fails_but_a_missing_default_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = run(&["config", "check", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no such configuration file"));

    // Under systemd the default is $CONFIGURATION_DIRECTORY/handoff.toml.
    let out = handoff(&["config", "check", "--json"])
        .env("CONFIGURATION_DIRECTORY", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["found"], false);
    assert_eq!(v["config"]["button_timeout"], "3m");

    std::fs::write(dir.path().join("handoff.toml"), "liveness = \"1m\"\n").unwrap();
    let out = handoff(&["config", "check", "--json"])
        .env("CONFIGURATION_DIRECTORY", dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["found"], true);
    assert_eq!(v["config"]["liveness"], "1m");
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/handoff.example.toml");
    let out = run(&["--log-format", "json", "-vv", "config", "check", example]);
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let read = events
        .iter()
        .find(|e| e["message"] == "configuration read")
        .unwrap_or_else(|| panic!("no 'configuration read' event in {err}"));
    assert_eq!(read["path"], example);
    assert_eq!(read["level"], "DEBUG");
}

/// systemd's JOURNAL_STREAM only counts when it names our own stderr. With
/// stderr a file whose device:inode it names, `auto` picks the journal:
/// entries go there, or, where no journald listens (containers), a warning
/// says so and lines fall back to stderr. With any other value, `auto`
/// writes human lines and never mentions the journal.
#[test]
fn journal_stream_counts_only_when_it_names_our_stderr() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/handoff.example.toml");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");

    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let out = handoff(&["-vv", "config", "check", example])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        err.is_empty() || err.contains("cannot reach the systemd journal"),
        "journal chosen, yet: {err}"
    );

    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let out = handoff(&["-vv", "config", "check", example])
        .env(
            "JOURNAL_STREAM",
            format!("{}:{}", meta.dev(), meta.ino() + 1),
        )
        .stderr(file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(err.contains("configuration read"), "{err}");
    assert!(!err.contains("journal"), "{err}");
}

#[test]
fn completions_and_man_come_from_the_binary() {
    let out = run(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = text(&out.stdout);
    assert!(script.contains("discover") && script.contains("config"));
    let out = run(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(".TH handoff 1"));
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}
