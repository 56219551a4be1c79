"""Publish one DNS-SD service with python-zeroconf, as a processor would.

Run by tests/interop_zeroconf.rs inside a private network namespace, so that
handoff's discovery is checked against an mDNS responder nobody here wrote.

    zeroconf_publish.py --type _lutron._tcp.local. --name "Lutron Status"
                        --server Lutron-0236e6a7.local. --port 22
                        --address 127.0.2.1
                        [--txt KEY=VALUE] [--txt-hex KEY=HEXBYTES] [--txt-bare KEY]

TXT strings are sent in the order given. --txt-hex sends arbitrary bytes
(e.g. invalid UTF-8); --txt-bare sends a key without '='. Once the service
is registered (probed and announced) it prints `registered FULLNAME` and
stays up until SIGTERM (goodbye, exit 0) or SIGKILL (no goodbye).
"""

import argparse
import asyncio
import signal
import sys

from _private_lan import LOOPBACK, require_private_lan

from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf


class TxtString(argparse.Action):
    """Appends (option, value) to one list, so TXT strings keep the order in
    which the options were given, whatever their kind."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.txt.append((option_string, values))


def parse_txt(items: list[tuple[str, str]]) -> dict[bytes, bytes | None]:
    props: dict[bytes, bytes | None] = {}
    for option, item in items:
        if option == "--txt-bare":
            props[item.encode()] = None
            continue
        key, _, value = item.partition("=")
        props[key.encode()] = bytes.fromhex(value) if option == "--txt-hex" else value.encode()
    return props


async def publish(args) -> None:
    aiozc = AsyncZeroconf(interfaces=[LOOPBACK], ip_version=IPVersion.V4Only)
    info = ServiceInfo(
        args.type,
        f"{args.name}.{args.type}",
        port=args.port,
        properties=parse_txt(args.txt),
        server=args.server,
        parsed_addresses=args.address,
    )
    # The first await queues the registration; the second waits for the
    # probes and the announcement.
    await (await aiozc.async_register_service(info))
    print(f"registered {info.name}", flush=True)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await aiozc.async_unregister_all_services()
    await aiozc.async_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--type", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--port", type=int, default=22)
    parser.add_argument("--address", action="append", required=True)
    parser.set_defaults(txt=[])
    for option in ("--txt", "--txt-hex", "--txt-bare"):
        parser.add_argument(option, action=TxtString, dest="txt", metavar="KEY[=VALUE]")
    args = parser.parse_args()
    require_private_lan()
    asyncio.run(publish(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
