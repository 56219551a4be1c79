//! Every command finds a processor named by address the same way `claim`
//! does: on the interfaces discovery would choose (here the private
//! network's loopback), and a processor not found names where it looked.

mod common;

use std::net::SocketAddr;

use common::{Cloud, Sim, TempDir, handoff};

fn addr() -> SocketAddr {
    "127.0.0.1:4436".parse().unwrap()
}

lan_test! {
    fn status_and_takeover_find_a_processor_by_address() {
        let sim = Sim::start(&["--count", "3"]);
        let dir = TempDir::new("resolve");
        let bundle = dir.path("bundle");
        let data = common::lake_place(&sim, &dir, true, &bundle);
        let _cloud = Cloud::start(&data, addr());
        let state = sim.state_dir.to_str().unwrap();
        let first = &sim.manifest[0];
        let address = first["addresses"][0].as_str().unwrap();
        let cloud = addr().to_string();
        let flags = ["--cloud", cloud.as_str(), "--cloud-identity", bundle.to_str().unwrap()];

        let mut args = vec!["--state-dir", state, "status", address, "--json"];
        args.extend(flags);
        let run = handoff(&args);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json()["status"]["id"], first["id"], "{}", run.stdout);

        // Nobody at 127.0.1.9: the message says where discovery looked.
        let mut args = vec!["--state-dir", state, "status", "127.0.1.9", "--timeout", "1s"];
        args.extend(flags);
        let run = handoff(&args);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(
            run.stderr.contains("no processor with address 127.0.1.9 answered on lo within 1s"),
            "{}",
            run.stderr
        );

        // The takeover identifies its processor the same way, before any
        // button or cloud step.
        let mut args = vec![
            "--state-dir", state, "takeover", "127.0.1.9", "--share-to", "pro@example.com",
            "--standalone", "--timeout", "1s",
        ];
        args.extend(flags);
        let run = handoff(&args);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(
            run.stderr.contains("no processor with address 127.0.1.9 answered on lo within 1s"),
            "{}",
            run.stderr
        );
    }
}
