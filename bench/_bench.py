"""Shared machinery of the benchmark harness (bench/README.md).

Every benchmark that advertises, browses, listens or connects re-executes
itself inside a private network namespace (and a private mount namespace,
so that avahi's and D-Bus's run directories are its own), after doing the
things that need the real network first: `cargo build --release`, the
Python venv under target/bench-venv, apt-get for avahi.

Inside, `Lan` makes two hosts on a private link, as on a site: the
namespace the harness runs in is the integrator's laptop (interface tool0,
198.18.0.1), a child namespace is the site (site0, 198.18.0.2) running
`handoff sim`, joined by a veth pair on 198.18.0.0/15 (the benchmarking
range, RFC 2544). Two mDNS stacks on one host lose unicast answers to each
other (processor-protocol.md §5): the browser under test is therefore
always alone on its host, and the tools take turns.

Measurements, not tests: nothing here asserts a time.
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# BENCH_BIN: another build of handoff to measure (to compare profiles);
# the default is the one `cargo build --release` makes.
BIN = Path(os.environ.get("BENCH_BIN", ROOT / "target/release/handoff"))
# The daemon alone, as handoff.service runs it: handoffd beside BIN
# (BENCH_DAEMON_BIN names another).
DAEMON_BIN = Path(os.environ.get("BENCH_DAEMON_BIN", BIN.with_name("handoffd")))
VENV = ROOT / "target/bench-venv"
PY = VENV / "bin/python"
PYDIR = Path(__file__).resolve().parent / "py"

# The pins: zeroconf as tests/interop_zeroconf.rs, pylutron-caseta and its
# dependencies as tests/interop_pylutron.rs.
ZEROCONF = ["zeroconf==0.154.0", "ifaddr==0.2.0"]
PYLUTRON = [
    "pylutron-caseta==0.30.1",
    "cryptography==50.0.2",
    "cffi==2.1.1",
    "pycparser==3.12",
    "orjson==3.13.0",
    "ifaddr==0.2.0",
]
MARKER = "handoff-bench-installed.txt"

INSIDE = "HANDOFF_PRIVATE_LAN"
TOOL_IP = "198.18.0.1"
SITE_IP = "198.18.0.2"
FIRST_PROCESSOR = "198.18.1.1"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def die(msg):
    log(f"{Path(sys.argv[0]).name}: {msg}")
    sys.exit(1)


# ---------------------------------------------------------------- outside


def INSIDE_NOW():
    return bool(os.environ.get(INSIDE))


def build(examples=()):
    """`cargo build --release` (and the named examples)."""
    extra = [a for e in examples for a in ("--example", e)]
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", str(ROOT / "Cargo.toml"),
         "--bin", "handoff", "--bin", "handoffd", *extra],
        check=True,
    )


def venv(packages):
    """target/bench-venv with `packages` (name==version) installed, once."""
    marker = VENV / MARKER
    have = set(marker.read_text().split()) if marker.exists() else set()
    want = set(packages)
    if want <= have:
        return
    log(f"installing {' '.join(sorted(want | have))} into {VENV}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"]
        + sorted(want | have),
        check=True,
    )
    tmp = marker.with_suffix(".tmp")
    tmp.write_text("".join(f"{p}\n" for p in sorted(want | have)))
    tmp.rename(marker)


def avahi_installed():
    return all(shutil.which(t) for t in ("avahi-daemon", "avahi-browse", "dbus-daemon"))


def ensure_avahi():
    """avahi-daemon and avahi-browse from Debian, installed if missing.
    apt's post-install scripts may try to start the daemon; without systemd
    (as here) nothing starts, and the harness never uses a system instance."""
    if avahi_installed():
        return True
    if os.geteuid() != 0:
        log("avahi-browse is missing and installing it needs root: skipping avahi")
        return False
    log("installing avahi-daemon avahi-utils with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    ok = (
        subprocess.run(["apt-get", "update", "-qq"], env=env).returncode == 0
        and subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
             "avahi-daemon", "avahi-utils", "dbus"],
            env=env,
        ).returncode == 0
    )
    return ok and avahi_installed()


def enter_private_lan(with_build=True, packages=(), want_avahi=False):
    """Re-executes this script in a fresh network + mount namespace, after
    the steps that need the outside world. Returns (inside) whether avahi
    is available."""
    if os.environ.get(INSIDE):
        # SIGTERM unwinds like Ctrl-C, so that every `finally` stops what
        # the harness started.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        return os.environ.get("HANDOFF_BENCH_AVAHI") == "1"
    if with_build and "BENCH_BIN" not in os.environ:
        build()
    if not os.access(BIN, os.X_OK):
        die(f"no handoff to run at {BIN} (BENCH_BIN)")
    if packages:
        venv(packages)
    avahi = want_avahi and ensure_avahi()
    flags = ["--net", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        flags.append("--map-root-user")
    env = dict(os.environ, **{INSIDE: "1", "HANDOFF_BENCH_AVAHI": "1" if avahi else "0"})
    script = "set -e; ip link set lo up; exec \"$@\""
    os.execvpe(
        "unshare",
        ["unshare", *flags, "--", "sh", "-c", script, "bench", sys.executable, *sys.argv],
        env,
    )


# ---------------------------------------------------------------- inside


class Lan:
    """The site namespace and the veth pair to it (see the module doc)."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="handoff-bench-"))
        self.children = []
        self.site = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
        time.sleep(0.2)
        pid = str(self.site.pid)
        sh(f"ip link add tool0 type veth peer name site0 netns {pid}")
        sh(f"ip addr add {TOOL_IP}/15 dev tool0")
        sh("ip link set tool0 up")
        # The processors' own addresses are local to the site host, as each
        # real processor's is to itself: the simulator binds its pairing and
        # main ports there. 198.18.1.0 – 198.18.7.255 covers 1,000 of them.
        self.in_site(
            "sh", "-c",
            f"ip link set lo up; ip addr add {SITE_IP}/15 dev site0; ip link set site0 up;"
            " ip route add local 198.18.1.0/24 dev lo; ip route add local 198.18.2.0/23 dev lo;"
            " ip route add local 198.18.4.0/22 dev lo",
            check=True,
        )
        # mDNS stacks list interfaces once, at start: wait for the link to be
        # up on both ends, then a little more.
        for _ in range(100):
            a = subprocess.run(["ip", "-o", "link", "show", "tool0"], capture_output=True, text=True)
            b = self.in_site("ip", "-o", "link", "show", "site0", capture_output=True, text=True)
            if "state UP" in a.stdout and "state UP" in b.stdout:
                break
            time.sleep(0.05)
        time.sleep(0.5)

    def site_cmd(self, *cmd):
        return ["nsenter", "-t", str(self.site.pid), "-n", *cmd]

    def in_site(self, *cmd, **kw):
        return subprocess.run(self.site_cmd(*cmd), **kw)

    def sim(self, count, *extra, seed=9, first_ip=FIRST_PROCESSOR, state=None, system_types="ra3,qsx,caseta"):
        """Starts `handoff sim --count N` on the site; returns (process,
        manifest) once its services are registered."""
        state = state or self.tmp / "sim-state"
        manifest = self.tmp / f"manifest-{time.monotonic_ns()}.json"
        logf = open(self.tmp / "sim.log", "ab")
        proc = subprocess.Popen(
            self.site_cmd(
                str(BIN), "sim", "--count", str(count), "--system-type", system_types,
                "--seed", str(seed), "--first-ip", first_ip, "--really-advertise",
                "--state-dir", str(state), "--manifest", str(manifest), *extra,
            ),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf,
            env=dict(os.environ, HANDOFF_LOG=os.environ.get("BENCH_SIM_LOG", "warn")),
        )
        self.children.append(proc)
        deadline = time.monotonic() + 120
        while not (manifest.exists() and manifest.stat().st_size > 0):
            if proc.poll() is not None:
                die(f"handoff sim exited ({proc.returncode}); see {self.tmp}/sim.log")
            if time.monotonic() > deadline:
                die("handoff sim wrote no manifest in 120 s")
            time.sleep(0.002)
        data = json.loads(manifest.read_text())
        manifest.unlink()
        return proc, data

    def close(self):
        for p in self.children:
            stop(p)
        stop(self.site)
        shutil.rmtree(self.tmp, ignore_errors=True)


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


def stop(proc, sig=signal.SIGTERM, wait=5.0):
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


class Avahi:
    """A private D-Bus system bus and avahi-daemon on tool0 only, inside
    this harness's own mount namespace (a tmpfs over /run, so nothing of
    the host's /run is touched or seen). `start()` gives a daemon with an
    empty cache; `stop()` ends it."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
        os.makedirs("/run/dbus", exist_ok=True)
        os.makedirs("/run/avahi-daemon", exist_ok=True)
        bus = tmp / "system_bus_socket"
        conf = tmp / "bus.conf"
        conf.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
""")
        self.bus = subprocess.Popen(
            ["dbus-daemon", "--nofork", "--nopidfile", f"--config-file={conf}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            if bus.exists():
                break
            time.sleep(0.01)
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={bus}"
        self.conf = tmp / "avahi-daemon.conf"
        self.conf.write_text("""[server]
host-name=bench-laptop
use-ipv4=yes
use-ipv6=no
allow-interfaces=tool0
enable-dbus=yes
ratelimit-interval-usec=0
ratelimit-burst=0

[wide-area]
enable-wide-area=no

[publish]
disable-publishing=yes
publish-addresses=no
publish-hinfo=no
publish-workstation=no
publish-domain=no

[reflector]
enable-reflector=no

[rlimits]
""")
        self.daemon = None

    def start(self):
        self.stop()
        self.daemon = subprocess.Popen(
            ["avahi-daemon", "--no-drop-root", "--no-chroot", "--no-rlimits", "--no-proc-title",
             "-f", str(self.conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        lines = []
        while True:
            line = self.daemon.stderr.readline()
            if not line:
                die("avahi-daemon exited: " + "".join(lines[-10:]))
            lines.append(line)
            if "Server startup complete" in line:
                break
        # Drain its log so that it never blocks on a full pipe.
        import threading
        threading.Thread(target=lambda s=self.daemon.stderr: [None for _ in s], daemon=True).start()

    def stop(self):
        if self.daemon is not None:
            stop(self.daemon)
            self.daemon = None

    def close(self):
        self.stop()
        stop(self.bus)


# ---------------------------------------------------------------- numbers


def summary(values):
    """median, min, max of the successful samples (None when there are none)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
    }


def fmt(v, digits=0):
    if v is None:
        return "—"
    return f"{v:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def table(headers, rows):
    """Prints rows (lists of strings) aligned under headers."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = "  ".join(f"{h:>{w}}" for h, w in zip(headers, widths))
    print(line)
    for r in rows:
        print("  ".join(f"{str(x):>{w}}" for x, w in zip(r, widths)))
    sys.stdout.flush()


def write_json(path, benchmark, params, results):
    if not path:
        return
    out = {
        "benchmark": benchmark,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "handoff": subprocess.run([str(BIN), "--version"], capture_output=True, text=True).stdout.strip(),
        "params": params,
        "results": results,
    }
    text = json.dumps(out, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(text)
    tmp.rename(path)
    log(f"wrote {path}")


def read_lines_until(proc, want, deadline, matches):
    """Reads `proc`'s stdout line by line until `matches(line)` has been
    true for `want` distinct keys or the deadline passes. Returns the time
    (monotonic) the last one arrived, or None, and how many were seen."""
    import selectors

    seen = set()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    fd = proc.stdout.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, len(seen)
        if not sel.select(left):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return None, len(seen)
        now = time.monotonic()
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            key = matches(line.decode("utf-8", "replace"))
            if key is not None:
                seen.add(key)
        if len(seen) >= want:
            return now, len(seen)


# ---------------------------------------------------------------- browsers


def handoff_env(tmp):
    return dict(os.environ, HANDOFF_STATE_DIR=str(tmp / "laptop-state"), HANDOFF_LOG="warn")


def watch_handoff(tmp):
    """`handoff discover --watch --json`: one JSON line per change."""
    proc = subprocess.Popen(
        [str(BIN), "discover", "--watch", "--json", "--interface", "tool0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=handoff_env(tmp),
    )

    def key(line):
        try:
            v = json.loads(line)
        except ValueError:
            return None
        if v.get("event") == "added":
            p = v.get("processor") or v
            return p.get("id") or p.get("serial") or line
        return None

    return [proc], key


# The `Environment=` of systemd/handoff.service, which the daemon runs with.
DAEMON_UNIT_ENV = " ".join(
    line.split("=", 1)[1].strip()
    for line in (ROOT / "systemd/handoff.service").read_text().splitlines()
    if line.startswith("Environment=")
)


def watch_daemon(tmp, alone=True):
    """The site daemon as systemd runs it (`handoffd`, default liveness, no
    cloud, no configuration file; `alone=False`: `handoff daemon`, the same
    code in the whole CLI's binary): the processors it knows, read from
    `handoff health --json` (one line per poll; the key is the count)."""
    state, run = tmp / "daemon-state", tmp / "daemon-run"
    dirs = ["--state-dir", str(state), "--runtime-dir", str(run)]
    config = tmp / "daemon.toml"
    config.write_text("")
    env = handoff_env(tmp)
    # The systemd unit's environment, to measure without it: BENCH_DAEMON_ENV="" .
    for kv in os.environ.get("BENCH_DAEMON_ENV", DAEMON_UNIT_ENV).split():
        k, _, v = kv.partition("=")
        env[k] = v
    command = [str(DAEMON_BIN)] if alone else [str(BIN), "daemon"]
    proc = subprocess.Popen(
        [*command, *dirs, "--config", str(config), "--interface", "tool0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )

    def poll():
        r = subprocess.run([str(BIN), "health", "--json", *dirs], capture_output=True, text=True,
                           env=handoff_env(tmp))
        try:
            return json.loads(r.stdout).get("processors", 0)
        except ValueError:
            return 0

    return [proc], poll


def watch_zeroconf(_tmp):
    proc = subprocess.Popen(
        [str(PY), str(PYDIR / "zc_browse.py"), "--interface", TOOL_IP, "--timeout", "600"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )

    def key(line):
        return line[len("resolved "):] if line.startswith("resolved ") else None

    return [proc], key


def watch_mdns_sd(_tmp):
    """A bare mdns-sd browser (examples/mdns_browse.rs): one line per instance."""
    proc = subprocess.Popen(
        [str(ROOT / "target/release/examples/mdns_browse"), "tool0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )

    def key(line):
        return line[len("resolved "):] if line.startswith("resolved ") else None

    return [proc], key


def avahi_key(line):
    """A resolved line of `avahi-browse -p`: =;IF;IPv4;NAME;TYPE;DOMAIN;HOST;ADDR;PORT;TXT."""
    f = line.split(";")
    if len(f) >= 9 and f[0] == "=" and f[2] == "IPv4":
        return f[3]
    return None


def watch_avahi(_tmp, avahi, terminate=False):
    """avahi-browse -rp (and -t when `terminate`) against a fresh daemon."""
    avahi.start()
    proc = subprocess.Popen(
        ["avahi-browse", "-rpt" if terminate else "-rp", "_lutron._tcp"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    return [proc], avahi_key
