"""Pairs once with a simulated processor using pylutron-caseta's
`async_pair`, unmodified, and prints {"pair_seconds": S} (the call alone;
the harness also times the whole process).

usage: pylutron_pair.py HOST PAIRING_IDENTITY_DIR

As tests/interop/pylutron_pair.py: only the library's trust anchors and
pairing identity are replaced, at run time, by the simulator's exported
ones (never a vendor key). Its protocol code runs as published.
"""

import asyncio
import json
import os
import sys
import time

if not os.environ.get("HANDOFF_PRIVATE_LAN"):
    sys.exit("refusing to run outside the benchmark's private network")

import pylutron_caseta.pairing as pairing  # noqa: E402


def replace_trust_anchors(identity_dir: str) -> None:
    def read(name: str) -> str:
        with open(os.path.join(identity_dir, name), encoding="ascii") as f:
            return f.read()

    authority = read("authority-ca.pem")
    pairing.LAP_KEY_PEM = read("client-key.pem")
    pairing.LAP_CERT_PEM = read("client-cert.pem")
    pairing.LAP_CA_PEM = authority
    pairing.LUTRON_ROOT_CA_PEM = authority


async def main(host: str, identity_dir: str) -> dict:
    replace_trust_anchors(identity_dir)
    started = time.monotonic()
    data = await pairing.async_pair(host)
    seconds = time.monotonic() - started
    if "-----BEGIN" not in data["cert"]:
        sys.exit("pylutron-caseta got no certificate")
    return {"pair_seconds": seconds}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(json.dumps(asyncio.run(main(*sys.argv[1:]))), flush=True)
