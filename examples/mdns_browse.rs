//! A bare mdns-sd browser, for `bench/discovery` to time beside `handoff
//! discover`: mdns-sd's own `browse` of `_lutron._tcp`, restricted to one
//! interface, printing one line per instance resolved with an IPv4
//! address, as an application using the crate directly would write it.
//!
//! ```text
//! cargo run --release --example mdns_browse -- INTERFACE
//! ```
//!
//! It refuses to run unless told it is on a private network (it
//! multicasts): `HANDOFF_PRIVATE_LAN` set, as the benchmark's namespaces,
//! `handoff lan` and the test harness set it.

use std::collections::HashSet;
use std::io::Write;

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let interface = std::env::args()
        .nth(1)
        .ok_or("usage: mdns_browse INTERFACE")?;
    if std::env::var_os(handoff::lan::PRIVATE_LAN_ENV).is_none() {
        return Err("refusing to browse outside a private network".into());
    }
    let daemon = ServiceDaemon::new()?;
    daemon.disable_interface(IfKind::All)?;
    daemon.enable_interface(IfKind::Name(interface))?;
    daemon.disable_interface(IfKind::IPv6)?;
    let events = daemon.browse("_lutron._tcp.local.")?;
    let mut done = HashSet::new();
    let mut out = std::io::stdout().lock();
    while let Ok(event) = events.recv() {
        if let ServiceEvent::ServiceResolved(service) = event
            && service.addresses.iter().any(|a| a.to_ip_addr().is_ipv4())
            && done.insert(service.fullname.clone())
        {
            writeln!(out, "resolved {}", service.fullname)?;
            out.flush()?;
        }
    }
    Ok(())
}
