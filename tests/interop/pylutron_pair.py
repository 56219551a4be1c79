"""Pairs with a simulated processor using pylutron-caseta, unmodified, then
lets its Smartbridge connect with the issued certificate and load what the
processor has. Prints one JSON object.

usage: pylutron_pair.py HOST PAIRING_IDENTITY_DIR OUT_DIR [--interact]

With --interact, once loaded it also turns the first light or switch on
and waits for the level event that says so, then prints a line
{"ready": true} and waits for a button event (the test presses a keypad
button with `handoff sim press-keypad`).

Only the library's trust anchors and pairing identity are replaced, at run
time: the vendor's embedded "LAP" client certificate, its key and CA (and
the vendor root it falls back to for RadioRA 3) become the simulator's
exported pairing identity. Its protocol code runs as published."""

import asyncio
import json
import logging
import os
import sys
import time

from _private_lan import require_private_lan

require_private_lan()

import pylutron_caseta.pairing as pairing  # noqa: E402
from pylutron_caseta.smartbridge import Smartbridge  # noqa: E402

# How long the bridge may take to connect and load everything.
CONNECT_TIMEOUT = 20
# How long to wait for a level or button event.
EVENT_TIMEOUT = 10


class Problems(logging.Handler):
    """Keeps what the library logs at WARNING or above: it logs failed
    subscriptions and unexpected messages there and carries on."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(f"{record.name}: {record.getMessage()}")


def replace_trust_anchors(identity_dir: str) -> None:
    """Points pairing at the simulator's authority instead of the vendor's."""

    def read(name: str) -> str:
        with open(os.path.join(identity_dir, name), encoding="ascii") as f:
            return f.read()

    authority = read("authority-ca.pem")
    pairing.LAP_KEY_PEM = read("client-key.pem")
    pairing.LAP_CERT_PEM = read("client-cert.pem")
    pairing.LAP_CA_PEM = authority
    # Used only if the processor's certificate fails LAP_CA: then it must
    # fail again, never reach a vendor root.
    pairing.LUTRON_ROOT_CA_PEM = authority


def write(out_dir: str, name: str, text: str) -> str:
    path = os.path.join(out_dir, name)
    with open(path, "w", encoding="ascii") as f:
        f.write(text)
    return path


async def interact(bridge) -> dict:
    """Turns a zone on and waits for its event; then waits for a press."""
    loop = asyncio.get_running_loop()
    lights = bridge.get_devices_by_domain("light") + bridge.get_devices_by_domain("switch")
    lights = [d for d in lights if d.get("zone") and d["device_id"] != "1"]
    result = {}
    if lights:
        device = lights[0]
        heard = loop.create_future()

        def on_change():
            level = bridge.get_device_by_id(device["device_id"])["current_state"]
            if level == 100 and not heard.done():
                heard.set_result(level)

        bridge.add_subscriber(device["device_id"], on_change)
        await bridge.turn_on(device["device_id"])
        result["zone_event"] = {
            "device": device["device_id"],
            "zone": device["zone"],
            "level": await asyncio.wait_for(heard, EVENT_TIMEOUT),
        }
    events = []
    released = loop.create_future()
    for button_id in bridge.get_buttons():

        def on_button(event, button_id=button_id):
            events.append([button_id, event])
            if event == "Release" and not released.done():
                released.set_result(None)

        bridge.add_button_subscriber(button_id, on_button)
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.wait_for(released, EVENT_TIMEOUT)
    result["button_events"] = events
    return result


async def main(host: str, identity_dir: str, out_dir: str, *flags: str) -> dict:
    replace_trust_anchors(identity_dir)
    problems = Problems()
    logging.getLogger("pylutron_caseta").addHandler(problems)
    started = time.monotonic()
    data = await pairing.async_pair(host)
    pair_seconds = time.monotonic() - started
    # The file names pylutron-caseta's own CLI keeps (processor-protocol.md §2).
    key = write(out_dir, "caseta.key", data["key"])
    cert = write(out_dir, "caseta.crt", data["cert"])
    ca = write(out_dir, "caseta-bridge.crt", data["ca"])

    bridge = Smartbridge.create_tls(host, key, cert, ca)
    try:
        await asyncio.wait_for(bridge.connect(), CONNECT_TIMEOUT)
        connected = bridge.is_connected()
        devices = {
            device_id: {
                "serial": d.get("serial"),
                "model": d.get("model"),
                "type": d.get("type"),
                "name": d.get("name"),
                "area": d.get("area"),
                "zone": d.get("zone"),
            }
            for device_id, d in bridge.get_devices().items()
        }
        areas = {area_id: a["name"] for area_id, a in bridge.areas.items()}
        buttons = {
            button_id: {
                "number": b.get("button_number"),
                "device": b.get("parent_device"),
            }
            for button_id, b in bridge.get_buttons().items()
        }
        events = await interact(bridge) if "--interact" in flags else {}
    finally:
        await bridge.close()
    return {
        "pair_seconds": pair_seconds,
        "leap_version": data["version"],
        "is_connected": connected,
        "devices": devices,
        "buttons": buttons,
        **events,
        "areas": areas,
        "scenes": len(bridge.get_scenes()),
        "occupancy_groups": len(bridge.occupancy_groups),
        "problems": problems.messages,
    }


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    print(json.dumps(asyncio.run(main(*sys.argv[1:]))), flush=True)
