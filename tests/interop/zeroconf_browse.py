"""Browse DNS-SD services with python-zeroconf and print what it resolved.

Run by tests/interop_zeroconf.rs inside a private network namespace, so that
a real mDNS implementation nobody here wrote checks what `handoff sim`
advertises.

    zeroconf_browse.py --type _lutron._tcp.local. [--type ...]
                       [--expect N] [--timeout SECONDS]

Browses until N instances are resolved with an address, or until the
timeout, then prints one JSON array on stdout: for each instance its name,
type, server, port, addresses, raw TXT strings (as latin-1 text, so that
every byte survives) and properties decoded as UTF-8 (null where a value is
missing or not UTF-8). Exit status 0 whatever was found: the test judges.
"""

import argparse
import asyncio
import json
import sys

from _private_lan import LOOPBACK, require_private_lan

from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

# How long one resolution (SRV, TXT, A) may take, in milliseconds. The first
# question is QU; its unicast answer can go to another mDNS socket of the
# namespace (processor-protocol.md §5), and then zeroconf asks again by
# multicast about a second later.
RESOLVE_MS = 3000


def txt_strings(text: bytes) -> list[bytes]:
    """The character-strings of a TXT RDATA, in wire order."""
    out, pos = [], 0
    while pos < len(text):
        n = text[pos]
        out.append(text[pos + 1 : pos + 1 + n])
        pos += 1 + n
    return out


def decode(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def describe(info: AsyncServiceInfo) -> dict:
    return {
        "name": info.name,
        "type": info.type,
        "server": info.server,
        "port": info.port,
        "addresses": sorted(info.parsed_addresses(IPVersion.V4Only)),
        "txt": [s.decode("latin-1") for s in txt_strings(info.text or b"")],
        "properties": {
            k.decode("utf-8", "replace"): decode(v) for k, v in info.properties.items()
        },
    }


async def browse(types: list[str], expect: int | None, timeout: float) -> list[dict]:
    aiozc = AsyncZeroconf(interfaces=[LOOPBACK], ip_version=IPVersion.V4Only)
    names: dict[str, str] = {}
    seen = asyncio.Event()

    def on_change(zeroconf, service_type, name, state_change):
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names[name] = service_type
            seen.set()

    browser = AsyncServiceBrowser(aiozc.zeroconf, types, handlers=[on_change])
    resolved: dict[str, dict] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            for name, ty in list(names.items()):
                if name in resolved:
                    continue
                info = AsyncServiceInfo(ty, name)
                left_ms = max(1, int((deadline - loop.time()) * 1000))
                if await info.async_request(aiozc.zeroconf, min(RESOLVE_MS, left_ms)):
                    if info.parsed_addresses(IPVersion.V4Only):
                        resolved[name] = describe(info)
            if expect is not None and len(resolved) >= expect:
                break
            seen.clear()
            try:
                await asyncio.wait_for(seen.wait(), min(0.2, max(0.0, deadline - loop.time())))
            except asyncio.TimeoutError:
                pass
    finally:
        await browser.async_cancel()
        await aiozc.async_close()
    return sorted(resolved.values(), key=lambda d: d["name"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--type", action="append", required=True, dest="types")
    parser.add_argument("--expect", type=int)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    require_private_lan()
    found = asyncio.run(browse(args.types, args.expect, args.timeout))
    json.dump(found, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
