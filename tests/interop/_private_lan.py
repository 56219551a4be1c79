"""The network rule, for the interop scripts: refuse to send mDNS anywhere but
a private network namespace whose only interface is loopback."""

import ipaddress
import os
import sys

import ifaddr

# The one interface address zeroconf may use. InterfaceChoice.All would pick
# the same inside a private namespace (loopback is all there is), but naming
# it keeps the scripts on loopback even if that ever changes.
LOOPBACK = "127.0.0.1"


def require_private_lan() -> None:
    """Exits with status 2 unless this is a private test network, as
    handoff's test harness makes (HANDOFF_PRIVATE_LAN set, loopback only)."""
    if not os.environ.get("HANDOFF_PRIVATE_LAN"):
        sys.exit("refusing to run: not inside a private network (HANDOFF_PRIVATE_LAN unset)")
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            addr = ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip
            if not ipaddress.ip_address(addr).is_loopback:
                sys.exit(
                    f"refusing to run: interface {adapter.nice_name} has address {addr}; "
                    "multicast would reach a real network"
                )
