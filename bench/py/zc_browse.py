"""Browse _lutron._tcp with python-zeroconf's (Async)ServiceBrowser and
print one line per instance resolved (SRV, TXT and an IPv4 address):

    resolved <instance name>

Run by the benchmarks on the private laptop namespace of bench/_bench.py,
bound to its one interface address. It browses until killed or until
--timeout; the harness timestamps the lines as they arrive. The resolver is
the library's documented one (AsyncServiceInfo.async_request), one task per
instance, as an application would write it.
"""

import argparse
import asyncio
import os
import sys

from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

TYPE = "_lutron._tcp.local."


async def browse(interface: str, timeout: float) -> None:
    aiozc = AsyncZeroconf(interfaces=[interface], ip_version=IPVersion.V4Only)
    done: set[str] = set()
    pending: set[str] = set()

    async def resolve(name: str) -> None:
        info = AsyncServiceInfo(TYPE, name)
        for _ in range(10):
            if await info.async_request(aiozc.zeroconf, 3000) and info.parsed_addresses(
                IPVersion.V4Only
            ):
                done.add(name)
                sys.stdout.write(f"resolved {name}\n")
                sys.stdout.flush()
                return
        pending.discard(name)

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added and name not in done and name not in pending:
            pending.add(name)
            asyncio.ensure_future(resolve(name))

    browser = AsyncServiceBrowser(aiozc.zeroconf, [TYPE], handlers=[on_change])
    try:
        await asyncio.sleep(timeout)
    finally:
        await browser.async_cancel()
        await aiozc.async_close()


def main() -> int:
    if not os.environ.get("HANDOFF_PRIVATE_LAN"):
        sys.exit("refusing to run outside the benchmark's private network")
    parser = argparse.ArgumentParser()
    parser.add_argument("--interface", required=True, help="IPv4 address to browse on")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    asyncio.run(browse(args.interface, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
