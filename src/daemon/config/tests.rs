use std::ffi::OsStr;

use super::load::MAX_CONFIG_BYTES;
use super::*;

#[test]
fn a_refusal_is_one_line_even_when_the_value_holds_a_newline() {
    // Found by the `config` fuzz target: the value was echoed raw, so
    // a crafted file could add lines to the log.
    for text in [
        "[cloud]\naddress = \"evil\\nhost:4433\"\n",
        "liveness = \"3\\nfortnights\"\n",
        "state_dir = \"rel\\native\"\n",
    ] {
        let Err(err) = Config::parse(text, Path::new("/etc/handoff/handoff.toml")) else {
            panic!("accepted: {text:?}");
        };
        let message = err.to_string();
        assert!(!message.contains('\n'), "{message:?}");
    }
}

const EXAMPLE: &str = include_str!("../../../handoff.example.toml");

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

fn invalid(text: &str) -> (usize, usize, Option<String>, String) {
    match parse(text) {
        Err(ConfigError::Invalid {
            line,
            column,
            key,
            message,
            ..
        }) => (line, column, key, message),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn empty_file_means_all_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(parse("# only a comment\n\n").unwrap(), Config::default());
}

#[test]
fn example_file_equals_the_defaults() {
    assert_eq!(parse(EXAMPLE).unwrap(), Config::default());
}

/// Every key of the configuration appears in the example file, set or
/// commented out, in its table, and a commented-out value is valid.
#[test]
fn example_file_documents_every_key() {
    let full = Config {
        state_dir: Some("/s".into()),
        pairing_identity: Some("/p".into()),
        interfaces: vec!["eth0".into()],
        cloud: CloudConfig {
            address: Some("cloud.example:4433".parse().unwrap()),
            identity: Some("/c".into()),
        },
        metrics: MetricsConfig {
            textfile: Some("/m/handoff.prom".into()),
            listen: Some("127.0.0.1:9721".parse().unwrap()),
            ..MetricsConfig::default()
        },
        ..Config::default()
    };
    let table = toml::Table::try_from(&full).unwrap();
    let mut keys = Vec::new();
    for (k, v) in &table {
        match v.as_table() {
            Some(sub) => keys.extend(sub.keys().map(|s| (Some(k.clone()), s.clone()))),
            None => keys.push((None, k.clone())),
        }
    }
    assert!(keys.len() >= 9, "{keys:?}");
    for (section, key) in keys {
        let mut current: Option<String> = None;
        let mut found = None;
        for line in EXAMPLE.lines() {
            let l = line.trim();
            if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                current = Some(name.to_string());
                continue;
            }
            let uncommented = l.trim_start_matches('#').trim_start();
            if current == section && uncommented.starts_with(&format!("{key} = ")) {
                found = Some(uncommented.to_string());
            }
        }
        let line = found.unwrap_or_else(|| panic!("{section:?} {key} missing from the example"));
        // The documented value is a valid value for that key.
        let text = match &section {
            Some(s) => format!("[{s}]\n{line}\n"),
            None => format!("{line}\n"),
        };
        parse(&text).unwrap_or_else(|e| panic!("example line `{line}` does not parse: {e}"));
    }
}

#[test]
fn keys_parse_to_their_values() {
    let c = parse(
        "interfaces = [\"eth0\", \"wlan0\"]\nstate_dir = \"/var/lib/x\"\n\
             button_timeout = \"2m\"\nliveness = \"1m 30s\"\nlog_format = \"json\"\n\
             relay_stuck_after = \"1h\"\n[cloud]\naddress = \"[2001:db8::1]:4433\"\n\
             identity = \"/etc/handoff/cloud\"\n",
    )
    .unwrap();
    assert_eq!(c.interfaces, ["eth0", "wlan0"]);
    assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/x")));
    assert_eq!(c.button_timeout, Duration::from_secs(120));
    assert_eq!(c.liveness, Duration::from_secs(90));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.relay_stuck_after, Duration::from_secs(3600));
    let address = c.cloud.address.unwrap();
    let [one] = address.as_slice() else {
        panic!("one address expected: {address}")
    };
    assert_eq!((one.host.as_str(), one.port), ("2001:db8::1", 4433));
    assert_eq!(address.to_string(), "[2001:db8::1]:4433");
}

#[test]
fn several_cloud_nodes_are_a_list_or_a_comma_separated_string() {
    for text in [
        "[cloud]\naddress = [\"a.example:4433\", \"[::1]:4434\"]\n",
        "[cloud]\naddress = \"a.example:4433, [::1]:4434\"\n",
    ] {
        let address = parse(text).unwrap().cloud.address.unwrap();
        let nodes: Vec<String> = address.as_slice().iter().map(ToString::to_string).collect();
        assert_eq!(nodes, ["a.example:4433", "[::1]:4434"], "{text}");
    }
    // A bad entry in a list is named, on the key's line.
    let (line, _, key, message) =
        invalid("\n[cloud]\naddress = [\"a.example:4433\", \"b.example\"]\n");
    assert_eq!((line, key.as_deref()), (3, Some("cloud.address")));
    assert!(
        message.contains("'b.example' is not host:port"),
        "{message}"
    );
    let (_, _, _, message) = invalid("[cloud]\naddress = []\n");
    assert!(message.contains("no cloud address"), "{message}");
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let (line, column, key, message) = invalid("liveness = \"30s\"\n\nbutton_timout = \"60s\"\n");
    assert_eq!((line, column), (3, 1));
    assert_eq!(key.as_deref(), Some("button_timout"));
    assert!(
        message.starts_with("unknown key `button_timout`"),
        "{message}"
    );
}

#[test]
fn unknown_key_in_a_table_is_named_with_the_table() {
    let (line, _, key, _) = invalid("[cloud]\naddress = \"c.example:443\"\nadress = \"x:1\"\n");
    assert_eq!(line, 3);
    assert_eq!(key.as_deref(), Some("cloud.adress"));
    let err = parse("[cloud]\nadress = \"x:1\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "test.toml:2:1: unknown key `cloud.adress`, expected `address` or `identity`"
        ),
        "{err}"
    );
}

#[test]
fn unknown_table_is_refused() {
    let (line, _, key, _) = invalid("liveness = \"30s\"\n[clod]\naddress = \"x:1\"\n");
    assert_eq!(line, 2);
    assert_eq!(key.as_deref(), Some("clod"));
}

#[test]
fn bad_duration_is_refused_with_key_and_line() {
    let (line, column, key, message) = invalid("# c\nbutton_timeout = \"three minutes\"\n");
    assert_eq!((line, column), (2, 18));
    assert_eq!(key.as_deref(), Some("button_timeout"));
    assert!(message.contains("three minutes"), "{message}");
    // A bare number is not a duration either: the unit must be said.
    let (_, _, key, _) = invalid("relay_stuck_after = \"600\"\n");
    assert_eq!(key.as_deref(), Some("relay_stuck_after"));
    let (_, _, key, _) = invalid("button_timeout = \"0s\"\n");
    assert_eq!(key.as_deref(), Some("button_timeout"));
}

#[test]
fn liveness_below_the_minimum_is_refused() {
    let (line, _, key, message) = invalid("liveness = \"2s\"\n");
    assert_eq!(line, 1);
    assert_eq!(key.as_deref(), Some("liveness"));
    assert!(message.contains("at least 6s"), "{message}");
    assert_eq!(parse("liveness = \"6s\"\n").unwrap().liveness, MIN_LIVENESS);
}

#[test]
fn bad_address_is_refused_with_key_and_line() {
    for bad in [
        "cloud.example.com",
        "cloud.example.com:0",
        "cloud.example.com:99999",
        ":4433",
        "2001:db8::1:4433",
        "[2001:db8::zz]:4433",
        "bad host:4433",
    ] {
        let (line, _, key, message) = invalid(&format!("\n[cloud]\naddress = \"{bad}\"\n"));
        assert_eq!(line, 3, "{bad}");
        assert_eq!(key.as_deref(), Some("cloud.address"), "{bad}");
        assert!(message.contains("host:port"), "{bad}: {message}");
    }
    for good in ["cloud.example.com:4433", "192.0.2.7:443", "[::1]:4433"] {
        let text = format!("[cloud]\naddress = \"{good}\"\n");
        let address = parse(&text).unwrap().cloud.address.unwrap();
        assert_eq!(address.to_string(), good);
    }
}

#[test]
fn metrics_off_loopback_or_not_a_prom_file_is_refused_with_key_and_line() {
    for (bad, key, says) in [
        (
            "listen = \"0.0.0.0:9721\"",
            "metrics.listen",
            "must be on loopback",
        ),
        (
            "listen = \"192.0.2.7:9721\"",
            "metrics.listen",
            "must be on loopback",
        ),
        ("listen = \"localhost\"", "metrics.listen", "address:port"),
        (
            "textfile = \"/var/lib/x/handoff.txt\"",
            "metrics.textfile",
            "must end in .prom",
        ),
        (
            "textfile = \"handoff.prom\"",
            "metrics.textfile",
            "absolute path",
        ),
        (
            "textfile_interval = \"0s\"",
            "metrics.textfile_interval",
            "longer than 0s",
        ),
    ] {
        let (line, _, k, message) = invalid(&format!("\n[metrics]\n{bad}\n"));
        assert_eq!((line, k.as_deref()), (3, Some(key)), "{bad}: {message}");
        assert!(message.contains(says), "{bad}: {message}");
    }
    let m = parse("[metrics]\nlisten = \"[::1]:9721\"\ntextfile = \"/t/handoff.prom\"\n")
        .unwrap()
        .metrics;
    assert_eq!(m.listen, Some("[::1]:9721".parse().unwrap()));
    assert_eq!(m.textfile, Some(PathBuf::from("/t/handoff.prom")));
}

#[test]
fn wrong_type_is_refused_with_key_and_line() {
    let (line, _, key, message) = invalid("interfaces = \"eth0\"\n");
    assert_eq!(line, 1);
    assert_eq!(key.as_deref(), Some("interfaces"));
    assert!(
        message.contains("sequence") || message.contains("array"),
        "{message}"
    );
    let (_, _, key, _) = invalid("log_format = \"xml\"\n");
    assert_eq!(key.as_deref(), Some("log_format"));
    let (_, _, key, _) = invalid("button_timeout = 180\n");
    assert_eq!(key.as_deref(), Some("button_timeout"));
}

#[test]
fn bad_interface_names_and_relative_paths_are_refused() {
    for bad in [
        "\"\"",
        "\"eth 0\"",
        "\"a/b\"",
        "\"averyveryverylongname\"",
        "\"eth0\", \"eth0\"",
    ] {
        let (line, _, key, _) = invalid(&format!("\ninterfaces = [{bad}]\n"));
        assert_eq!((line, key.as_deref()), (2, Some("interfaces")), "{bad}");
    }
    let (_, _, key, message) = invalid("state_dir = \"var/lib/handoff\"\n");
    assert_eq!(key.as_deref(), Some("state_dir"));
    assert!(message.contains("absolute"), "{message}");
    let (_, _, key, _) = invalid("[cloud]\nidentity = \"bundle\"\n");
    assert_eq!(key.as_deref(), Some("cloud.identity"));
    let (_, _, key, _) = invalid("pairing_identity = \"./p\"\n");
    assert_eq!(key.as_deref(), Some("pairing_identity"));
}

#[test]
fn broken_toml_is_refused_with_its_line() {
    let (line, _, _, _) = invalid("liveness = \"30s\"\nbutton_timeout = \"3s\n");
    assert_eq!(line, 2);
}

#[test]
fn default_path_follows_configuration_directory() {
    assert_eq!(
        default_config_path_from(None),
        PathBuf::from(DEFAULT_CONFIG_PATH)
    );
    assert_eq!(
        default_config_path_from(Some(OsStr::new("/etc/handoff:/etc/other"))),
        PathBuf::from("/etc/handoff/handoff.toml")
    );
    assert_eq!(
        default_config_path_from(Some(OsStr::new(""))),
        PathBuf::from(DEFAULT_CONFIG_PATH)
    );
}

#[test]
fn missing_explicit_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    assert!(matches!(
        load(Some(&path)),
        Err(ConfigError::Missing { .. })
    ));
}

#[test]
fn explicit_file_is_read_and_oversized_or_binary_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    std::fs::write(&path, "liveness = \"1m\"\n").unwrap();
    let (config, source) = load(Some(&path)).unwrap();
    assert_eq!(config.liveness, Duration::from_secs(60));
    assert_eq!(source, ConfigSource::Explicit(path.clone()));
    std::fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
    assert!(matches!(
        load(Some(&path)),
        Err(ConfigError::NotText { .. })
    ));
    std::fs::write(&path, vec![b'#'; (MAX_CONFIG_BYTES + 1) as usize]).unwrap();
    assert!(matches!(
        load(Some(&path)),
        Err(ConfigError::TooLarge { .. })
    ));
}

#[test]
fn resolve_fills_directories_under_the_state_dir() {
    let source = ConfigSource::DefaultMissing(DEFAULT_CONFIG_PATH.into());
    let config = Config {
        state_dir: Some("/var/lib/handoff".into()),
        ..Config::default()
    };
    let e = config.resolve(None, &source).unwrap();
    assert_eq!(e.state_dir, PathBuf::from("/var/lib/handoff"));
    assert_eq!(
        e.pairing_identity,
        PathBuf::from("/var/lib/handoff/pairing-identity")
    );
    assert_eq!(
        e.cloud.identity,
        PathBuf::from("/var/lib/handoff/cloud-identity")
    );
    // The command line wins over the file.
    let e = config.resolve(Some("/tmp/x".into()), &source).unwrap();
    assert_eq!(e.state_dir, PathBuf::from("/tmp/x"));
}
