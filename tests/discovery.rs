//! Discovery against simulated processors, each test on its own private
//! network.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Sim, Watch, handoff, identity_facts, is_event};
use serde_json::Value;

fn facts(list: &[Value]) -> BTreeSet<common::Facts> {
    list.iter().map(identity_facts).collect()
}

lan_test! {
    fn finds_one_simulated_processor_with_the_manifest_facts() {
        let sim = Sim::start(&["--count", "1", "--seed", "11", "--no-probe"]);
        let run = handoff(&["discover", "--json", "--timeout", "2s"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let found = run.json();
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(facts(found), facts(&sim.manifest));
        let p = &found[0];
        assert_eq!(p["host"], format!("Lutron-{}.local.", p["id"].as_str().unwrap()));
        assert_eq!(p["product"], "RadioRA 3 Processor");
        assert_eq!(p["warnings"], serde_json::json!([]));
    }
}

lan_test! {
    fn finds_exactly_the_fifty_processors_of_the_manifest() {
        // With probing, as real processors do it.
        let sim = Sim::start(&["--count", "50", "--system-type", "ra3,qsx,caseta", "--seed", "3"]);
        std::thread::sleep(Duration::from_secs(1));
        let run = handoff(&["discover", "--json", "--timeout", "3s"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let found = run.json();
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), 50);
        assert_eq!(facts(found), facts(&sim.manifest));
        let types: BTreeSet<&str> = found.iter().map(|p| p["system_type"].as_str().unwrap()).collect();
        assert_eq!(types, BTreeSet::from(["HWQSProcessor", "RadioRa3Processor", "SmartBridge"]));
        // Sorted by id for people and scripts alike.
        let ids: Vec<&str> = found.iter().map(|p| p["id"].as_str().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}

lan_test! {
    fn table_lists_id_serial_product_address_mac_firmware_status() {
        let sim = Sim::start(&["--count", "2", "--system-type", "qsx", "--seed", "5", "--no-probe"]);
        let run = handoff(&["discover", "--timeout", "2s"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        // A line that starts with a space continues the one above it.
        let lines: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with(' ')).collect();
        assert_eq!(lines.len(), 3, "{}", run.stdout);
        assert!(lines[0].starts_with("ID        SERIAL    PRODUCT "), "{}", run.stdout);
        for p in &sim.manifest {
            let line = lines
                .iter()
                .find(|l| l.starts_with(p["id"].as_str().unwrap()))
                .unwrap_or_else(|| panic!("{} not in\n{}", p["id"], run.stdout));
            let serial = p["serial"].as_u64().unwrap().to_string();
            for field in [p["mac"].as_str().unwrap(), p["firmware"].as_str().unwrap(), &serial] {
                assert!(line.contains(&format!(" {field} ")), "{field}: {line}");
            }
            assert!(line.contains(p["addresses"][0].as_str().unwrap()), "{line}");
            assert!(line.contains(" QSX "), "{line}");
        }
        assert!(run.stdout.contains("good,"), "{}", run.stdout);
        assert!(run.stdout.contains("Unclaimed"), "{}", run.stdout);
    }
}

lan_test! {
    // The table a person reads at a terminal, pastes into a ticket or
    // prints for a handover: 80 columns, with the decimal serial that
    // labels and support use.
    fn table_of_a_three_product_fleet_fits_80_columns_with_the_decimal_serial() {
        let sim = Sim::start(&["--count", "3", "--system-type", "ra3,qsx,caseta", "--seed", "7", "--no-probe"]);
        let run = handoff(&["discover", "--timeout", "2s", "--expect", "3"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        for line in run.stdout.lines() {
            assert!(line.chars().count() <= 80, "{} chars: {line}\n{}", line.chars().count(), run.stdout);
        }
        for p in &sim.manifest {
            let line = run
                .stdout
                .lines()
                .find(|l| l.starts_with(p["id"].as_str().unwrap()))
                .unwrap_or_else(|| panic!("{} not in\n{}", p["id"], run.stdout));
            let serial = p["serial"].as_u64().unwrap().to_string();
            assert!(line.contains(&format!("  {serial}  ")), "{line}");
            assert!(line.contains(p["mac"].as_str().unwrap()), "{line}");
            assert!(line.contains(p["firmware"].as_str().unwrap()), "{line}");
        }
    }
}

lan_test! {
    fn no_processor_found_is_a_clear_message_and_exit_zero() {
        let run = handoff(&["discover", "--timeout", "1s"]);
        assert_eq!(run.code, Some(0));
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains("no processors found on lo in 1s"), "{}", run.stderr);
        let run = handoff(&["discover", "--timeout", "1s", "--json"]);
        assert_eq!(run.json(), serde_json::json!([]));
    }
}

lan_test! {
    fn unknown_interface_is_refused_by_name() {
        let run = handoff(&["discover", "--timeout", "1s", "--interface", "eth7"]);
        assert_eq!(run.code, Some(1));
        assert!(run.stderr.contains("no interface named 'eth7' (interfaces here: lo)"), "{}", run.stderr);
    }
}

lan_test! {
    fn goodbye_is_reported_removed_and_others_stay() {
        let watch = Watch::start(&["--liveness", "6s"]);
        let a = Sim::start(&["--seed", "21", "--no-probe", "--instance-name", "A"]);
        let b = Sim::start(&["--seed", "22", "--no-probe", "--instance-name", "B", "--first-ip", "127.0.2.1"]);
        let (ida, idb) = (a.ids()[0].clone(), b.ids()[0].clone());
        watch.wait_for(Duration::from_secs(10), "added A", |e| is_event(e, "added", &ida));
        watch.wait_for(Duration::from_secs(10), "added B", |e| is_event(e, "added", &idb));
        a.stop();
        let seen = watch.wait_for(Duration::from_secs(10), "removed A", |e| is_event(e, "removed", &ida));
        assert!(!seen.iter().any(|e| is_event(e, "removed", &idb)), "{seen:#?}");
        // B keeps answering liveness checks: not removed over three cycles.
        let later = watch.drain(Duration::from_secs(7));
        assert!(!later.iter().any(|e| e["event"] == "removed"), "{later:#?}");
        drop(b);
    }
}

lan_test! {
    fn processor_killed_without_goodbye_is_removed_within_the_liveness_bound() {
        let watch = Watch::start(&["--liveness", "6s"]);
        let a = Sim::start(&["--seed", "31", "--no-probe", "--instance-name", "A"]);
        let b = Sim::start(&["--seed", "32", "--no-probe", "--instance-name", "B", "--first-ip", "127.0.2.1"]);
        let (ida, idb) = (a.ids()[0].clone(), b.ids()[0].clone());
        watch.wait_for(Duration::from_secs(10), "added A", |e| is_event(e, "added", &ida));
        watch.wait_for(Duration::from_secs(10), "added B", |e| is_event(e, "added", &idb));
        a.kill();
        // Record expiry alone would take 120 s; the 6 s bound (plus slack
        // for a loaded machine) proves the liveness re-check did it.
        let seen = watch.wait_for(Duration::from_secs(20), "removed A", |e| is_event(e, "removed", &ida));
        assert!(!seen.iter().any(|e| is_event(e, "removed", &idb)), "{seen:#?}");
        drop(b);
    }
}

lan_test! {
    fn address_change_is_reported_changed_not_duplicated() {
        let watch = Watch::start(&["--liveness", "30s"]);
        let first = Sim::start(&["--seed", "41", "--no-probe", "--first-ip", "127.0.1.1"]);
        let id = first.ids()[0].clone();
        watch.wait_for(Duration::from_secs(10), "added", |e| is_event(e, "added", &id));
        // The processor reboots with a new DHCP lease: same serial, new address.
        first.kill();
        // A reboot takes a while. (Within one second of being cached, a
        // record is not displaced by a cache-flush announcement, RFC 6762
        // §10.2, so an instant "reboot" would rightly keep both addresses.)
        std::thread::sleep(Duration::from_millis(1500));
        let _second = Sim::start(&["--seed", "41", "--no-probe", "--first-ip", "127.0.3.7"]);
        let seen = watch.wait_for(Duration::from_secs(10), "changed to 127.0.3.7", |e| {
            is_event(e, "changed", &id) && e["processor"]["addresses"] == serde_json::json!(["127.0.3.7"])
        });
        assert!(seen.iter().all(|e| e["event"] == "changed"), "{seen:#?}");
        assert!(seen.iter().all(|e| e["changes"].as_array().unwrap().contains(&"addresses".into())));
        let run = handoff(&["discover", "--json", "--timeout", "2s"]);
        let found = run.json();
        assert_eq!(found.as_array().unwrap().len(), 1, "{found:#?}");
        assert_eq!(found[0]["addresses"], serde_json::json!(["127.0.3.7"]));
    }
}

lan_test! {
    fn same_instance_name_with_different_serials_is_two_processors() {
        // Both ask for "Lutron Status": the second one's probe meets the
        // first, and it is renamed, as a second QSX processor is.
        let a = Sim::start(&["--seed", "51", "--instance-name", "Lutron Status"]);
        let b = Sim::start(&["--seed", "52", "--instance-name", "Lutron Status", "--first-ip", "127.0.2.1"]);
        std::thread::sleep(Duration::from_secs(2));
        let run = handoff(&["discover", "--json", "--timeout", "2s"]);
        let found = run.json();
        let found = found.as_array().unwrap();
        let ids: BTreeSet<&str> = found.iter().map(|p| p["id"].as_str().unwrap()).collect();
        let (ida, idb) = (a.ids()[0].clone(), b.ids()[0].clone());
        let want: BTreeSet<&str> = [ida.as_str(), idb.as_str()].into();
        assert_eq!(ids, want, "{found:#?}");
        let names: BTreeSet<&str> = found.iter().map(|p| p["instance"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}

lan_test! {
    fn reused_instance_name_is_a_new_processor_not_a_change() {
        let watch = Watch::start(&["--liveness", "30s"]);
        let a = Sim::start(&["--seed", "61", "--no-probe"]);
        let ida = a.ids()[0].clone();
        watch.wait_for(Duration::from_secs(10), "added A", |e| is_event(e, "added", &ida));
        a.stop();
        watch.wait_for(Duration::from_secs(10), "removed A", |e| is_event(e, "removed", &ida));
        let b = Sim::start(&["--seed", "62", "--no-probe"]);
        let idb = b.ids()[0].clone();
        assert_ne!(ida, idb);
        let seen = watch.wait_for(Duration::from_secs(10), "added B", |e| is_event(e, "added", &idb));
        assert_eq!(seen.len(), 1, "{seen:#?}");
        assert_eq!(seen[0]["processor"]["instance"], "Lutron Status");
    }
}

lan_test! {
    fn host_query_reports_the_processor_at_that_address() {
        let sim = Sim::start(&["--count", "3", "--system-type", "ra3,qsx,caseta", "--seed", "71", "--no-probe"]);
        let run = handoff(&["discover", "--json", "--host", "127.0.1.2", "--timeout", "3s"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let found = run.json();
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(identity_facts(&found[0]), identity_facts(&sim.manifest[1]));
        assert_eq!(found[0]["claim_status"], "Unclaimed");
    }
}

lan_test! {
    fn host_that_does_not_answer_is_an_error() {
        let run = handoff(&["discover", "--host", "127.0.9.9", "--timeout", "1s"]);
        assert_eq!(run.code, Some(1));
        assert!(run.stderr.contains("unicast DNS-SD query to 127.0.9.9: no answer on UDP port 5353"), "{}", run.stderr);
    }
}

lan_test! {
    fn expect_stops_as_soon_as_enough_are_found() {
        let _sim = Sim::start(&["--count", "4", "--seed", "81", "--no-probe"]);
        let started = std::time::Instant::now();
        let run = handoff(&["discover", "--json", "--expect", "4", "--timeout", "60s"]);
        assert_eq!(run.json().as_array().unwrap().len(), 4);
        // Not a timing assertion: it must not have waited out the 60 s.
        assert!(started.elapsed() < Duration::from_secs(50));
    }
}

lan_test! {
    fn sim_refuses_a_network_with_another_interface() {
        let ok = std::process::Command::new("ip")
            .args(["link", "add", "veth0", "type", "veth", "peer", "name", "veth1"])
            .status()
            .unwrap();
        assert!(ok.success());
        let run = handoff(&["sim", "--count", "1"]);
        assert_eq!(run.code, Some(1));
        assert!(run.stderr.contains("refusing to advertise simulated processors here"), "{}", run.stderr);
        assert!(run.stderr.contains("interface veth0"), "{}", run.stderr);
    }
}

lan_test! {
    fn sim_refuses_a_loopback_without_multicast() {
        let ok = std::process::Command::new("ip")
            .args(["link", "set", "lo", "multicast", "off"])
            .status()
            .unwrap();
        assert!(ok.success());
        let run = handoff(&["sim", "--count", "1"]);
        assert_eq!(run.code, Some(1));
        assert!(run.stderr.contains("a loopback without multicast"), "{}", run.stderr);
    }
}

#[test]
fn demo_runs_on_its_own_private_network() {
    // Not inside lan_test: the demo must make its private network itself.
    let run = handoff(&["demo"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("Found 3 of 3 processors"),
        "{}",
        run.stdout
    );
    for product in [" RA3 ", " QSX ", " Caséta "] {
        assert!(run.stdout.contains(product), "{}", run.stdout);
    }
    // The whole story: one Place of each colour, then the takeover.
    for expected in [
        "YELLOW ra3",
        "GREY   qsx",
        "GREEN  caseta",
        "done: pro@example.com has access to Place lake-house",
        "pro@example.com          pro installer  30 days left",
        "homeowner: none",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing '{expected}':\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

lan_test! {
    fn interface_allow_list_browses_only_there() {
        let sim = Sim::start(&["--count", "2", "--seed", "91", "--no-probe"]);
        let run = handoff(&["discover", "--json", "--timeout", "2s", "--interface", "lo"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let found = run.json();
        assert_eq!(facts(found.as_array().unwrap()), facts(&sim.manifest));
        // An interface that exists but carries no multicast is refused.
        let ok = std::process::Command::new("ip")
            .args(["link", "add", "veth0", "type", "veth", "peer", "name", "veth1"])
            .status()
            .unwrap();
        assert!(ok.success());
        let run = handoff(&["discover", "--timeout", "1s", "--interface", "veth0"]);
        assert_eq!(run.code, Some(1));
        assert!(run.stderr.contains("interface 'veth0' cannot carry multicast"), "{}", run.stderr);
    }
}

lan_test! {
    // Two fleets whose processors advertise the same instance names (no
    // probing, as many real processors on one site): every processor is
    // listed once, with its own MAC and address.
    fn two_fleets_sharing_instance_names_are_all_listed_apart() {
        let a = Sim::start(&["--count", "3", "--seed", "111", "--no-probe"]);
        let b = Sim::start(&["--count", "2", "--seed", "112", "--no-probe", "--first-ip", "127.0.2.1"]);
        let shared: BTreeSet<&str> = b.manifest.iter().map(|p| p["instance"].as_str().unwrap()).collect();
        assert!(a.manifest.iter().any(|p| shared.contains(p["instance"].as_str().unwrap())));
        std::thread::sleep(Duration::from_secs(1));
        let mut want = facts(&a.manifest);
        want.extend(facts(&b.manifest));
        // Each browse meets the fleets' answers in another order: a few.
        for _ in 0..3 {
            let run = handoff(&["discover", "--standalone", "--json", "--timeout", "2s"]);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            let found = run.json();
            let found = found.as_array().unwrap();
            assert_eq!(facts(found), want, "{found:#?}");
        }
    }
}

lan_test! {
    // While watching: two processors share "Lutron Status"; one of them
    // comes back under another name (renamed, as probing does). It is
    // reported changed, and neither it nor the other is ever reported removed.
    fn a_rename_while_watching_is_a_change_and_removes_nobody() {
        // The renamed processor must be back well within the bound (a
        // loaded machine may take seconds to start a simulator), else its
        // removal would be right.
        let watch = Watch::start(&["--liveness", "12s"]);
        let a = Sim::start(&["--seed", "121", "--no-probe"]);
        let b = Sim::start(&["--seed", "122", "--no-probe", "--first-ip", "127.0.2.1"]);
        let (ida, idb) = (a.ids()[0].clone(), b.ids()[0].clone());
        let (maca, macb) = (a.manifest[0]["mac"].clone(), b.manifest[0]["mac"].clone());
        let mut seen = watch.wait_for(Duration::from_secs(10), "added A", |e| is_event(e, "added", &ida));
        seen.extend(watch.wait_for(Duration::from_secs(10), "added B", |e| is_event(e, "added", &idb)));
        // Both keep answering under one name: over two liveness rounds
        // (a silent one would be gone by then), no removal.
        seen.extend(watch.drain(Duration::from_secs(9)));
        a.kill();
        std::thread::sleep(Duration::from_millis(1500));
        let _a2 = Sim::start(&["--seed", "121", "--no-probe", "--instance-name", "Lutron Status (2)"]);
        seen.extend(watch.wait_for(Duration::from_secs(15), "A renamed", |e| {
            is_event(e, "changed", &ida) && e["processor"]["instance"] == "Lutron Status (2)"
        }));
        seen.extend(watch.drain(Duration::from_secs(9)));
        assert!(!seen.iter().any(|e| e["event"] == "removed"), "{seen:#?}");
        for e in &seen {
            let p = &e["processor"];
            let want = if p["id"] == ida.as_str() { &maca } else { &macb };
            assert_eq!(&p["mac"], want, "{e:#}");
        }
    }
}

lan_test! {
    fn host_query_on_a_shared_loopback_lists_only_the_asked_host() {
        let a = Sim::start(&["--count", "1", "--seed", "131", "--no-probe", "--first-ip", "127.0.1.1"]);
        let b = Sim::start(&["--count", "1", "--seed", "132", "--no-probe", "--first-ip", "127.0.1.2"]);
        // Each sim answers for its own address only; which one the kernel
        // hands a unicast query to is chance, so ask several times.
        for _ in 0..4 {
            let run = handoff(&["discover", "--json", "--host", "127.0.1.2", "--timeout", "3s"]);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            let found = run.json();
            let found = found.as_array().unwrap();
            assert_eq!(found.len(), 1, "{found:#?}");
            assert_eq!(identity_facts(&found[0]), identity_facts(&b.manifest[0]));
        }
        drop(a);
    }
}

lan_test! {
    fn fewer_than_expected_is_said_and_exits_one() {
        let sim = Sim::start(&["--count", "2", "--seed", "141", "--no-probe"]);
        let run = handoff(&["discover", "--json", "--expect", "3", "--timeout", "2s"]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(
            run.stderr.contains("found 2 of the 3 processors expected, on lo in 2s"),
            "{}",
            run.stderr
        );
        // What was found is still printed, for a person to see which is missing.
        assert_eq!(facts(run.json().as_array().unwrap()), facts(&sim.manifest));
        // Enough found: exit 0, nothing said.
        let run = handoff(&["discover", "--json", "--expect", "2", "--timeout", "5s"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(!run.stderr.contains("expected"), "{}", run.stderr);
    }
}

lan_test! {
    // Refused before anything is sent; in a private network all the same,
    // so that a regression cannot browse a real LAN.
    fn zero_timeout_and_zero_expect_are_usage_errors() {
        for args in [
            &["discover", "--timeout", "0"][..],
            &["discover", "--timeout", "0s", "--json"],
            &["discover", "--expect", "0"],
        ] {
            let run = handoff(args);
            assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
            assert_eq!(run.stdout, "", "{args:?}");
        }
        let run = handoff(&["discover", "--timeout", "0"]);
        assert!(
            run.stderr.contains("a zero timeout leaves no time for any answer"),
            "{}",
            run.stderr
        );
    }
}

lan_test! {
    // The same serial (and MAC) at two addresses, both asked: one of them
    // may be an impostor. Both answers are listed as one processor with a
    // warning on stderr and in the JSON.
    fn two_hosts_answering_for_one_serial_are_a_warning() {
        let a = Sim::start(&["--count", "1", "--seed", "151", "--no-probe", "--first-ip", "127.0.1.1"]);
        let _b = Sim::start(&["--count", "1", "--seed", "151", "--no-probe", "--first-ip", "127.0.2.1"]);
        let run = handoff(&["discover", "--json", "--host", "127.0.1.1", "--host", "127.0.2.1", "--timeout", "3s"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let found = run.json();
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), 1, "{found:#?}");
        let id = a.ids()[0].clone();
        let serial = a.manifest[0]["serial"].as_u64().unwrap();
        let want = format!(
            "2 asked hosts answer for serial {serial} ({id}): 127.0.1.1 and 127.0.2.1; one may be an impostor"
        );
        assert_eq!(found[0]["warnings"], serde_json::json!([want]), "{found:#?}");
        assert!(run.stderr.contains(&want), "{}", run.stderr);
        // One host asked: no warning.
        let run = handoff(&["discover", "--json", "--host", "127.0.1.1", "--timeout", "3s"]);
        assert_eq!(run.json()[0]["warnings"], serde_json::json!([]), "{}", run.stdout);
    }
}

lan_test! {
    /// A device whose instance name, host name and a TXT key carry ESC,
    /// BEL and a newline (`sim --fault hostile-names`): `discover` for
    /// people, its log at trace, and the daemon's log at trace never
    /// print them raw (no cleared screen, no forged line); JSON keeps them
    /// exactly, as JSON escapes.
    fn hostile_names_from_the_lan_are_escaped_in_every_human_line_and_log() {
        use std::process::{Command, Stdio};
        let sim = Sim::start(&["--count", "2", "--system-type", "qsx", "--no-probe", "--fault", "hostile-names"]);
        let hostile = "\u{1b}[2J\u{7}\nFORGED ";
        let json = handoff(&["discover", "--json", "--timeout", "3s"]);
        assert_eq!(json.code, Some(0), "{}", json.stderr);
        let found = json.json();
        let instances: BTreeSet<&str> = found.as_array().unwrap().iter()
            .map(|p| p["instance"].as_str().unwrap()).collect();
        let expected: BTreeSet<String> = sim.manifest.iter()
            .map(|p| p["instance"].as_str().unwrap().to_owned()).collect();
        assert_eq!(instances, expected.iter().map(String::as_str).collect());
        assert!(instances.iter().all(|i| i.starts_with(hostile)), "{instances:?}");

        let human = handoff(&["discover", "--timeout", "3s"]);
        assert_eq!(human.code, Some(0), "{}", human.stderr);
        // The host name is shown (in a warning), escaped.
        assert!(human.stderr.contains("host name '\\u{1b}[2J\\u{7}\\nFORGED-Lutron-"), "{}", human.stderr);
        let traced = Command::new(common::handoff_bin())
            .args(["-vv", "--log-format", "human", "discover", "--timeout", "3s"])
            .env("HANDOFF_LOG", "trace").stdin(Stdio::null()).output().unwrap();
        assert_eq!(traced.status.code(), Some(0));
        let traced = String::from_utf8_lossy(&traced.stderr).into_owned();
        assert!(traced.contains("FORGED KEY"), "the TXT key reached the log: {traced}");

        // The daemon, at trace, with a client asking it.
        let dir = common::TempDir::new("hostile-daemon");
        let run = dir.path("run");
        let log = dir.path("daemon.err");
        let daemon = Command::new(common::handoff_bin())
            .args(["-vv", "--log-format", "human", "--state-dir"]).arg(dir.path("state"))
            .arg("--runtime-dir").arg(&run).arg("daemon")
            .env("HANDOFF_LOG", "trace").env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null()).stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn().unwrap();
        let daemon = common::ChildGuard(daemon);
        let run_s = run.to_str().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let through_daemon = loop {
            let h = handoff(&["--runtime-dir", run_s, "discover"]);
            if h.code == Some(0) && h.stdout.lines().count() == 1 + 2 * 2 { break h; }
            assert!(std::time::Instant::now() < deadline, "the daemon never listed both: {}\n{}", h.stdout, h.stderr);
            std::thread::sleep(Duration::from_millis(200));
        };
        drop(daemon);
        let daemon_log = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
        assert!(daemon_log.contains("FORGED"), "the names reached the daemon's log: {daemon_log}");

        for (what, text) in [
            ("discover's stdout", &human.stdout), ("discover's stderr", &human.stderr),
            ("discover --json's stderr", &json.stderr), ("discover's trace log", &traced),
            ("discover through the daemon", &through_daemon.stdout),
            ("discover through the daemon (stderr)", &through_daemon.stderr),
            ("the daemon's trace log", &daemon_log),
        ] {
            assert!(!text.contains(['\u{1b}', '\u{7}']), "{what} carries a raw ESC or BEL:\n{text}");
            assert!(!text.contains("\nFORGED"), "{what} has a forged line:\n{text}");
        }
    }
}

/// Counts, for `window`, the mDNS responses multicast to the group that
/// answer for `instance` (what a burst of liveness answers costs every
/// mDNS stack on the LAN, mdns-sd's daemon in the browse included).
fn multicast_answers_for(instance: &str, window: Duration) -> usize {
    use nix::sys::socket::{
        AddressFamily, IpMembershipRequest, MsgFlags, SockFlag, SockType, SockaddrIn, bind, recv,
        setsockopt, socket, sockopt,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
    setsockopt(&fd, sockopt::ReusePort, &true).unwrap();
    setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, 200_000),
    )
    .unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, 5353)).unwrap();
    let group = IpMembershipRequest::new(
        "224.0.0.251".parse().unwrap(),
        Some("127.0.0.1".parse().unwrap()),
    );
    setsockopt(&fd, sockopt::IpAddMembership, &group).unwrap();
    let end = std::time::Instant::now() + window;
    let mut buf = vec![0u8; 65_535];
    let mut count = 0;
    while std::time::Instant::now() < end {
        let Ok(len) = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) else {
            continue;
        };
        let packet = &buf[..len];
        let response = packet.get(2).is_some_and(|flags| flags & 0x80 != 0);
        if response
            && packet
                .windows(instance.len())
                .any(|w| w == instance.as_bytes())
        {
            count += 1;
        }
    }
    count
}

lan_test! {
    /// Liveness rounds ask a legacy question: processors answer it by
    /// unicast to the browse alone, so the burst of answers never reaches
    /// the group (and mdns-sd's daemon, which re-reads its whole cache for
    /// every packet it gets). Asked by multicast, as before, a 6 s bound
    /// makes a round every 2 s, each answered to the group.
    fn liveness_rounds_are_answered_to_the_browse_not_to_the_group() {
        let watch = Watch::start(&["--liveness", "6s"]);
        let a = Sim::start(&["--seed", "41", "--no-probe", "--instance-name", "Liveness A"]);
        let ida = a.ids()[0].clone();
        watch.wait_for(Duration::from_secs(10), "added A", |e| is_event(e, "added", &ida));
        // Past mdns-sd's own first re-queries (1 s, 3 s, 7 s after it starts).
        std::thread::sleep(Duration::from_secs(8));
        let answers = multicast_answers_for("Liveness A", Duration::from_secs(7));
        assert!(answers <= 1, "{answers} multicast answers in 7 s of 2 s rounds");
        // And A is still there: it answered every round, to the browse.
        let later = watch.drain(Duration::from_secs(1));
        assert!(!later.iter().any(|e| e["event"] == "removed"), "{later:#?}");
        drop(a);
    }
}
