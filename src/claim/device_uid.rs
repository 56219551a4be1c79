//! The `DeviceUID` a claim sends: the MAC address of our interface that
//! reaches the processor, so that the processor's records name the machine
//! that claimed it. Real clients send `000000000000`; so do we when there
//! is no MAC to send (loopback, a tunnel).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use crate::processor::Mac;

/// What other clients send.
pub const ANONYMOUS_DEVICE_UID: &str = "000000000000";

/// The 12 lowercase hex digits of the MAC of the interface whose address
/// routes to `processor`, or [`ANONYMOUS_DEVICE_UID`]. Why it fell back is
/// logged at debug level: nothing here is worth failing a claim for.
pub fn device_uid_towards(processor: IpAddr) -> String {
    match local_mac_towards(processor) {
        Ok(mac) => Mac(mac).bare_hex(),
        Err(why) => {
            tracing::debug!(%processor, "sending DeviceUID {ANONYMOUS_DEVICE_UID}: {why}");
            ANONYMOUS_DEVICE_UID.to_owned()
        }
    }
}

fn local_mac_towards(processor: IpAddr) -> Result<[u8; 6], String> {
    let local = local_address_towards(processor)?;
    let interfaces = crate::lan::interfaces().map_err(|e| e.to_string())?;
    let interface = interfaces
        .iter()
        .find(|i| i.addresses.contains(&local))
        .ok_or_else(|| format!("no interface holds our address {local}"))?;
    if interface.loopback {
        return Err(format!(
            "{local} is on loopback ({}), which has no MAC",
            interface.name
        ));
    }
    let mac = mac_address::mac_address_by_name(&interface.name)
        .map_err(|e| format!("cannot read the MAC of {}: {e}", interface.name))?
        .ok_or_else(|| format!("{} has no MAC", interface.name))?
        .bytes();
    if mac == [0; 6] {
        return Err(format!("{} has an all-zero MAC", interface.name));
    }
    Ok(mac)
}

/// The local address the kernel would use to reach `processor`: a
/// connected UDP socket's own address. Nothing is sent.
fn local_address_towards(processor: IpAddr) -> Result<IpAddr, String> {
    let any: SocketAddr = match processor {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket
        .connect((processor, 9))
        .map_err(|e| format!("no route to {processor}: {e}"))?;
    socket
        .local_addr()
        .map(|a| a.ip())
        .map_err(|e| format!("cannot read the local address: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_is_sent_as_twelve_lowercase_hex_digits() {
        assert_eq!(
            Mac([0x02, 0x4c, 0x02, 0x36, 0xe6, 0xa7]).bare_hex(),
            "024c0236e6a7"
        );
    }

    #[test]
    fn loopback_has_no_mac_so_the_anonymous_uid_is_sent() {
        // Routing to 127.0.0.1 never leaves loopback, on any machine.
        assert_eq!(
            device_uid_towards(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ANONYMOUS_DEVICE_UID
        );
    }
}
