//! The local network handoff stands on: which interfaces it may use, and the
//! private throw-away networks that tests, demos and benchmarks run in.
//!
//! mDNS is multicast, so a simulator advertising on a real interface reaches
//! other people's networks. Everything that advertises for testing checks
//! [`is_private`] first, and [`private_lan_command`] is how the demo and the
//! test harness put themselves on a private network.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::IpAddr;
use std::process::Command;

use nix::net::if_::InterfaceFlags;

/// Errors about the local network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LanError {
    #[error("cannot list network interfaces: {0}")]
    List(#[source] nix::Error),
    #[error("no interface named '{name}' (interfaces here: {available})")]
    NoSuchInterface { name: String, available: String },
    #[error("interface '{0}' cannot carry multicast (it is down or has multicast off)")]
    NotMulticast(String),
    #[error(
        "no multicast-capable network interface is up (interfaces here: {0}); \
         name one with --interface"
    )]
    NoUsableInterface(String),
}

/// A network interface with the facts interface selection needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub up: bool,
    pub multicast: bool,
    pub loopback: bool,
    pub addresses: Vec<IpAddr>,
}

impl Interface {
    fn usable(&self) -> bool {
        self.up && self.multicast
    }

    /// Container and VM plumbing: multicast there reaches no processor.
    fn looks_virtual(&self) -> bool {
        const PREFIXES: [&str; 6] = ["docker", "veth", "br-", "virbr", "vnet", "cni"];
        PREFIXES.iter().any(|p| self.name.starts_with(p))
    }
}

/// The interfaces of this network namespace, sorted by name.
pub fn interfaces() -> Result<Vec<Interface>, LanError> {
    let mut by_name: BTreeMap<String, Interface> = BTreeMap::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(LanError::List)? {
        let entry = by_name
            .entry(ifa.interface_name.clone())
            .or_insert_with(|| Interface {
                name: ifa.interface_name.clone(),
                up: ifa.flags.contains(InterfaceFlags::IFF_UP),
                multicast: ifa.flags.contains(InterfaceFlags::IFF_MULTICAST),
                loopback: ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK),
                addresses: Vec::new(),
            });
        if let Some(addr) = ifa.address {
            if let Some(v4) = addr.as_sockaddr_in() {
                entry.addresses.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                entry.addresses.push(IpAddr::V6(v6.ip()));
            }
        }
    }
    Ok(by_name.into_values().collect())
}

fn names(all: &[Interface]) -> String {
    if all.is_empty() {
        return "none".into();
    }
    all.iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Chooses the interfaces to use for mDNS.
///
/// With an allow-list, exactly those (each must exist and carry multicast).
/// Without one: every interface that is up and multicast-capable, except
/// loopback and obvious container plumbing (docker*, veth*, br-*, …);
/// loopback only when it is the only choice, as on a private test network.
pub fn choose_interfaces(all: &[Interface], allow: &[String]) -> Result<Vec<String>, LanError> {
    if !allow.is_empty() {
        let mut chosen = Vec::new();
        for name in allow {
            let Some(intf) = all.iter().find(|i| &i.name == name) else {
                return Err(LanError::NoSuchInterface {
                    name: name.clone(),
                    available: names(all),
                });
            };
            if !intf.usable() {
                return Err(LanError::NotMulticast(name.clone()));
            }
            if !chosen.contains(name) {
                chosen.push(name.clone());
            }
        }
        return Ok(chosen);
    }
    let real: Vec<String> = all
        .iter()
        .filter(|i| i.usable() && !i.loopback && !i.looks_virtual())
        .map(|i| i.name.clone())
        .collect();
    if !real.is_empty() {
        return Ok(real);
    }
    let loopback: Vec<String> = all
        .iter()
        .filter(|i| i.usable() && i.loopback)
        .map(|i| i.name.clone())
        .collect();
    if !loopback.is_empty() {
        return Ok(loopback);
    }
    Err(LanError::NoUsableInterface(names(all)))
}

/// Whether this network namespace is a private test network: loopback is
/// its only interface, and loopback carries multicast.
///
/// A namespace with any other interface may reach somebody's LAN, so it
/// does not count, and neither does a loopback without multicast (where a
/// simulator would be invisible anyway).
pub fn is_private(all: &[Interface]) -> bool {
    !all.is_empty() && all.iter().all(|i| i.loopback && i.multicast && i.up)
}

/// Environment variable set inside a network made by [`private_lan_command`].
pub const PRIVATE_LAN_ENV: &str = "HANDOFF_PRIVATE_LAN";

/// What a fresh namespace needs before mDNS works on its loopback: link up,
/// an Ethernet-sized MTU (65536 hides packet-size bugs), multicast on, and
/// the multicast range routed to it. `handoff lan CMD…` runs a command there.
const SETUP: &str = "set -e
ip link set lo up
ip link set lo mtu 1500
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo
exec \"$@\"";

/// A command that runs `program args…` in a fresh, private network
/// namespace: `unshare --net` as root, with a user namespace otherwise.
pub fn private_lan_command<S: AsRef<OsStr>>(
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = S>,
) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.arg("--net");
    if !nix::unistd::geteuid().is_root() {
        cmd.arg("--map-root-user");
    }
    cmd.args(["--", "sh", "-c", SETUP, "lan"])
        .arg(program)
        .args(args)
        .env(PRIVATE_LAN_ENV, "1");
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intf(name: &str, up: bool, multicast: bool, loopback: bool) -> Interface {
        Interface {
            name: name.into(),
            up,
            multicast,
            loopback,
            addresses: vec![],
        }
    }

    #[test]
    fn default_skips_loopback_and_virtual_interfaces() {
        let all = vec![
            intf("lo", true, true, true),
            intf("eth0", true, true, false),
            intf("wlan0", true, true, false),
            intf("docker0", true, true, false),
            intf("veth12ab", true, true, false),
            intf("br-5f2c", true, true, false),
            intf("eth1", false, true, false),
            intf("tun0", true, false, false),
        ];
        assert_eq!(choose_interfaces(&all, &[]).unwrap(), vec!["eth0", "wlan0"]);
    }

    #[test]
    fn loopback_only_when_it_is_the_only_choice() {
        let all = vec![
            intf("lo", true, true, true),
            intf("docker0", true, true, false),
        ];
        assert_eq!(choose_interfaces(&all, &[]).unwrap(), vec!["lo"]);
        let all = vec![intf("lo", true, false, true)];
        assert!(matches!(
            choose_interfaces(&all, &[]),
            Err(LanError::NoUsableInterface(_))
        ));
    }

    #[test]
    fn allow_list_is_exact_and_checked() {
        let all = vec![
            intf("lo", true, true, true),
            intf("eth0", true, true, false),
            intf("veth1", true, true, false),
            intf("tun0", true, false, false),
        ];
        let allow = vec!["veth1".to_string(), "lo".to_string(), "veth1".to_string()];
        assert_eq!(
            choose_interfaces(&all, &allow).unwrap(),
            vec!["veth1", "lo"]
        );
        let err = choose_interfaces(&all, &["eth9".to_string()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no interface named 'eth9' (interfaces here: lo, eth0, veth1, tun0)"
        );
        assert!(matches!(
            choose_interfaces(&all, &["tun0".to_string()]),
            Err(LanError::NotMulticast(_))
        ));
    }

    #[test]
    fn private_means_only_a_multicast_loopback() {
        assert!(is_private(&[intf("lo", true, true, true)]));
        assert!(!is_private(&[intf("lo", true, false, true)]));
        assert!(!is_private(&[intf("lo", false, true, true)]));
        assert!(!is_private(&[
            intf("lo", true, true, true),
            intf("eth0", true, true, false)
        ]));
        assert!(!is_private(&[]));
    }
}
