#!/usr/bin/env bash
# bench/discover.sh — time from `handoff discover` start to every simulated
# processor resolved, for fleets of 1 and 50 (or the sizes given).
#
#   bench/discover.sh [RUNS] [SIZES...]       e.g. bench/discover.sh 15 1 50 500
#
# Two hosts on a private network, as on a site: this namespace is the
# integrator's laptop (interface tool0), a child namespace is the site
# (site0) running `handoff sim`, joined by a veth pair on 198.18.0.0/15
# (the benchmarking range, RFC 2544). Two mDNS stacks on one host share
# port 5353 and lose unicast answers to each other (processor-protocol.md
# §5), which would time that artefact instead of discovery.
#
# Each run is a fresh `handoff discover --expect N` process (empty mDNS
# cache), so what is timed is what an integrator waits for. Prints the
# median and min–max wall time per fleet size. Measurements, not tests:
# nothing here asserts a time.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${HANDOFF_PRIVATE_LAN:-}" ]; then
  cargo build --release --quiet --manifest-path "$here/Cargo.toml"
  flags=(--net); [ "$(id -u)" = 0 ] || flags+=(--map-root-user)
  exec unshare "${flags[@]}" -- sh -c '
    set -e
    ip link set lo up
    HANDOFF_PRIVATE_LAN=1 exec "$@"' bench "$0" "$@"
fi
bin="$here/target/release/handoff"
runs=${1:-11}; shift || true
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1 50)
tmp=$(mktemp -d)
unshare --net sleep 3600 &
site=$!
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
sleep 0.2
ip link add tool0 type veth peer name site0 netns "$site"
ip addr add 198.18.0.1/15 dev tool0
ip link set tool0 up
# The processors' own addresses (198.18.1.0/24 and up) are local to the
# site host, as each real processor's is to itself: the simulator binds its
# pairing and main ports there.
nsenter -t "$site" -n sh -c 'ip link set lo up; ip addr add 198.18.0.2/15 dev site0
  ip link set site0 up; ip route add local 198.18.1.0/24 dev lo; ip route add local 198.18.2.0/23 dev lo'
# mDNS stacks list interfaces once, at start: wait for the link to be up on
# both ends (operstate "up", not "lowerlayerdown"), then a little more.
for _ in $(seq 100); do
  ip -o link show tool0 | grep -q 'state UP' &&
    nsenter -t "$site" -n ip -o link show site0 | grep -q 'state UP' && break
  sleep 0.05
done
sleep 0.5

printf '%-6s %-5s %-10s %-10s %-10s %s\n' fleet runs median_ms min_ms max_ms found
for n in "${sizes[@]}"; do
  # --really-advertise: the site namespace has site0, a veth this script made.
  HANDOFF_LOG=${BENCH_SIM_LOG:-warn} nsenter -t "$site" -n "$bin" sim --count "$n" --system-type ra3,qsx,caseta --seed 9 \
    --no-probe --first-ip 198.18.1.1 --really-advertise --state-dir "$tmp/state" --manifest "$tmp/m.json" 2>>"${BENCH_SIM_LOGFILE:-/dev/null}" &
  sim=$!
  while [ ! -s "$tmp/m.json" ]; do
    kill -0 "$sim" 2>/dev/null || { echo "handoff sim exited; rerun with BENCH_SIM_LOGFILE=FILE to see why" >&2; exit 1; }
    sleep 0.05
  done
  # Let the announcements settle so runs do not race the simulator's start.
  sleep 1
  : > "$tmp/times"
  found=ok
  for _ in $(seq "$runs"); do
    # A responder multicasts a record at most once a second (RFC 6762 §6):
    # a run right after the previous one would time that rule, not a cold
    # discovery.
    sleep 1.2
    t0=$(date +%s%N)
    got=$("$bin" discover --json --expect "$n" --timeout 30s 2>/dev/null | grep -c '"id"' || true)
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 )) >> "$tmp/times"
    [ "$got" = "$n" ] || found="missed ($got of $n)"
  done
  sort -n "$tmp/times" | awk -v n="$n" -v runs="$runs" -v found="$found" '
    { v[NR] = $1 }
    END {
      med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%-6s %-5s %-10s %-10s %-10s %s\n", n, runs, med, v[1], v[NR], found
    }'
  kill "$sim"; wait "$sim" 2>/dev/null || true
  rm -f "$tmp/m.json"
done
