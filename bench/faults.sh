#!/usr/bin/env bash
# bench/faults.sh — the fault suite of issue 7: what handoff survives.
#
#   bench/faults.sh [--quick] [--keep] [--seed N] [PART...]
#
# PART is any of: sigkill daemonkill cutoff diskfull churn (default: all
# five, in that order). Each part prints what it did, then one line
#   PASS <part>: <counts>      or      FAIL <part>: <what differed>
# and the script exits 1 if any part failed (2 on a usage error).
#
#   sigkill   10,000 events queued while the cloud is down; then
#             `handoff relay` started and SIGKILLed at a random point 100
#             times (10–400 ms after its start), restarted each time, and
#             a last run left to finish. The cloud must hold exactly 10,000
#             events and 10,001 grants (one per event, plus the owner's).
#   daemonkill  The same with the site daemon as the relaying process
#             (`handoff daemon --cloud`, as systemd runs it): SIGKILLed 100
#             times 50–650 ms after its start, restarted each time; a last
#             daemon runs until `handoff health` shows an empty backlog,
#             then stops on SIGTERM. Same counts.
#   cutoff    The relay delivering 10,000 events; once a fifth are at the
#             cloud, the cloud is cut off for 60 s, twice: once frozen with
#             SIGSTOP (the connection stays open and nothing answers: a
#             hung server or a silent network partition, which only the
#             relay's own --cloud-wait deadline can detect), once killed
#             with SIGKILL and restarted 60 s later (connections refused:
#             a crash). The same relay process must finish on its own and
#             the counts be exact.
#   diskfull  The state directory on a 2 MiB tmpfs, with a 1 MiB ballast
#             file; events queued until an append fails. The failure must
#             be one line saying the disk is full (no panic, no backtrace);
#             `handoff status --relay` must then read the outbox (backlog =
#             appends that succeeded); a relay started on the full disk
#             must deliver them (checked for 30 s); then the ballast is
#             removed, as the error message advises, and the same relay
#             must finish; the cloud must hold exactly the appends that
#             succeeded.
#   churn     10 fleets of 50 simulated processors (`handoff sim`, seeds
#             fixed per fleet, so 500 processors in all) started and
#             stopped at random for 5 minutes, half of the stops SIGTERM
#             (goodbye packets) and half SIGKILL (no goodbye), while
#             `handoff discover --watch --json --liveness 6s` runs (it
#             stands in for the site daemon's inventory until the daemon
#             lands). At the end, after the liveness bound has passed, the
#             inventory rebuilt from the watch's added/changed/removed
#             lines must equal the union of the manifests of the fleets
#             still running (ids and addresses), and no processor may
#             have been reported removed while its fleet was running and
#             had last stopped over three liveness bounds earlier (a false
#             removal). Prints how long
#             removals took after SIGTERM and after SIGKILL.
#
# --quick   Every part short, for trying the script (about 3 minutes):
#           2,000 events, 10 kills, 5 s cut-offs, 10 s full-disk window,
#           60 s of churn with 10 fleets of 5.
# --keep    Keep the working directory (logs, cloud data, outboxes, the
#           watch's lines) and print where it is.
# --seed N  Seed of the random kill points and churn (default: the PID);
#           printed at the start, to replay a run's choices.
#
# Everything runs inside a private network namespace (only a loopback, with
# multicast, as `handoff lan` makes it) and a private mount namespace
# (for the tmpfs); nothing touches a real interface. Run it as root or as a
# user allowed unprivileged user namespaces. Needs: cargo, unshare
# (util-linux), ip (iproute2), jq, python3. Not run in CI: the default
# sizes take about 12 minutes.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

if [ -z "${HANDOFF_FAULTS_INSIDE:-}" ]; then
  for a in "$@"; do [ "$a" = -h ] || [ "$a" = --help ] && { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; }; done
  echo "faults: building (cargo build --release, example queue_events)"
  cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin handoff --example queue_events || exit 1
  flags=(--net --mount --propagation private); [ "$(id -u)" = 0 ] || flags+=(--map-root-user)
  exec unshare "${flags[@]}" -- sh -c '
    set -e
    ip link set lo up
    ip link set lo mtu 1500
    ip link set lo multicast on
    ip route add 224.0.0.0/4 dev lo
    HANDOFF_FAULTS_INSIDE=1 exec "$@"' faults "$0" "$@"
fi

# ---------------------------------------------------------------- options
quick=0 keep=0 seed=$$ parts=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --keep) keep=1 ;;
    --seed) [ $# -ge 2 ] || usage; seed=$2; shift ;;
    sigkill|daemonkill|cutoff|diskfull|churn) parts+=("$1") ;;
    *) echo "faults: unknown argument $1" >&2; usage ;;
  esac
  shift
done
[ ${#parts[@]} -gt 0 ] || parts=(sigkill daemonkill cutoff diskfull churn)
RANDOM=$seed

if [ $quick = 1 ]; then
  EVENTS=2000 KILLS=10 CUT=5 FULL_WAIT=10 CHURN_S=60 FLEETS=10 FLEET_SIZE=5
else
  EVENTS=10000 KILLS=100 CUT=60 FULL_WAIT=30 CHURN_S=300 FLEETS=10 FLEET_SIZE=50
fi
LIVENESS=6
OWNER=designer@example.com
CLOUD=127.0.0.1:4433
bin=$here/target/release/handoff
queue=$here/target/release/examples/queue_events
tmp=$(mktemp -d /tmp/handoff-faults.XXXXXX)
export HANDOFF_LOG=${HANDOFF_LOG:-warn}

cleanup() {
  local pids
  pids=$(jobs -pr)
  if [ -n "$pids" ]; then kill -CONT $pids 2>/dev/null; kill -9 $pids 2>/dev/null; fi
  wait 2>/dev/null
  mountpoint -q "$tmp/diskfull/state" 2>/dev/null && umount "$tmp/diskfull/state"
  if [ $keep = 1 ]; then echo "faults: working directory kept: $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=()
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "[$part] $*"; }
pass() { echo "PASS $part: $*"; }
fail() { echo "FAIL $part: $*"; failed+=("$part"); }

# A cloud with one Place (remote services on) and a daemon identity enrolled
# in STATE/cloud-identity. $1: directory holding cloud/ and state/.
setup_cloud() {
  local d=$1
  "$bin" cloud --data "$d/cloud" place create --id lake --as "$OWNER" --remote-services \
    --project-file "$d/project.json" >/dev/null || return 1
  "$bin" cloud --data "$d/cloud" enroll --name site --account "$OWNER" \
    --out "$d/state/cloud-identity" >/dev/null
}

# Starts `handoff cloud serve` on $CLOUD for data $1; sets cloud_pid.
start_cloud() {
  "$bin" cloud --data "$1/cloud" serve --listen "$CLOUD" >>"$1/cloud.log" 2>&1 &
  cloud_pid=$!
  for _ in $(seq 400); do
    (exec 3<>"/dev/tcp/${CLOUD%:*}/${CLOUD#*:}") 2>/dev/null && return 0
    kill -0 "$cloud_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "the cloud did not start; see $1/cloud.log" >&2
  return 1
}

stop_cloud() { kill -9 "$cloud_pid" 2>/dev/null; wait "$cloud_pid" 2>/dev/null; }

cloud_events() { "$bin" cloud --data "$1/cloud" stats --json 2>/dev/null | jq -r .events; }
cloud_grants() { "$bin" cloud --data "$1/cloud" place show lake --json 2>/dev/null | jq -r '.access | length'; }
# Distinct pro emails granted: catches a grant applied twice under two entries.
cloud_pros() {
  "$bin" cloud --data "$1/cloud" place show lake --json 2>/dev/null |
    jq -r '[.access[].account | select(startswith("pro"))] | unique | length'
}
backlog() { "$bin" --state-dir "$1/state" status --relay --json 2>/dev/null | jq -r .relay.backlog; }

# Waits up to $2 seconds for process $1; its exit code in wait_rc (124 if
# it is still running).
wait_for() {
  local pid=$1 limit=$2 t0
  t0=$(now)
  while kill -0 "$pid" 2>/dev/null; do
    awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }' && { wait_rc=124; return; }
    sleep 0.1
  done
  wait "$pid"; wait_rc=$?
}

# Expects exactly $2 events, $2 + 1 grants and $2 distinct pros at the
# cloud of $1, and an empty outbox; prints the counts; returns 1 if not.
check_counts() {
  local d=$1 n=$2 ev gr pros bl
  ev=$(cloud_events "$d"); gr=$(cloud_grants "$d"); pros=$(cloud_pros "$d"); bl=$(backlog "$d")
  counts="events at the cloud $ev/$n, grants $gr/$((n + 1)), distinct pros $pros/$n, backlog $bl"
  [ "$ev" = "$n" ] && [ "$gr" = $((n + 1)) ] && [ "$pros" = "$n" ] && [ "$bl" = 0 ]
}

# ------------------------------------------------------- 1. relay SIGKILL
part_sigkill() {
  local d=$tmp/sigkill t0 live=0 early=0 i pid before
  mkdir -p "$d"
  setup_cloud "$d" || { fail "cannot set up the cloud"; return; }
  "$queue" "$d/state" lake "$EVENTS" >/dev/null || { fail "cannot queue $EVENTS events"; return; }
  say "queued $EVENTS events while the cloud was down (backlog $(backlog "$d"))"
  start_cloud "$d" || { fail "cloud did not start"; return; }
  t0=$(now)
  for i in $(seq "$KILLS"); do
    "$bin" --state-dir "$d/state" relay --cloud "$CLOUD" --timeout 600s >>"$d/relay.log" 2>&1 &
    pid=$!
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", 0.010 + r / 32768 * 0.390 }')"
    if kill -0 "$pid" 2>/dev/null; then live=$((live + 1)); else early=$((early + 1)); fi
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ $((i % (KILLS / 10 > 0 ? KILLS / 10 : 1))) = 0 ] &&
      say "$i kills; events at the cloud: $(cloud_events "$d")"
  done
  before=$(cloud_events "$d")
  say "$live relays SIGKILLed while running, $early had exited before their kill; $before/$EVENTS events at the cloud before the last run ($(elapsed "$t0") s)"
  [ "$before" -lt "$EVENTS" ] || say "note: every event was delivered before the last run; the kills came too late to prove much"
  t0=$(now)
  "$bin" --state-dir "$d/state" relay --cloud "$CLOUD" --timeout 600s --json >"$d/last.json" 2>>"$d/relay.log" &
  wait_for $! 660
  say "last run: exit $wait_rc in $(elapsed "$t0") s: $(cat "$d/last.json")"
  stop_cloud
  if check_counts "$d" "$EVENTS" && [ "$wait_rc" = 0 ]; then
    pass "$counts after $live kills mid-stream"
  else
    fail "$counts; last relay exit $wait_rc (logs: $d/relay.log)"
  fi
}

# --------------------------------------------------- 1b. daemon SIGKILL
# The same, with the site daemon as the relaying process (`handoff daemon
# --cloud`, as systemd runs it): SIGKILLed at random points KILLS times,
# restarted each time; then one last daemon runs until `handoff health`
# shows an empty backlog. Every event must be at the cloud exactly once.
part_daemonkill() {
  local d=$tmp/daemonkill t0 live=0 early=0 i pid before left
  mkdir -p "$d/run"
  : >"$d/handoff.toml"
  setup_cloud "$d" || { fail "cannot set up the cloud"; return; }
  "$queue" "$d/state" lake "$EVENTS" >/dev/null || { fail "cannot queue $EVENTS events"; return; }
  start_cloud "$d" || { fail "cloud did not start"; return; }
  daemon() {
    "$bin" --state-dir "$d/state" --runtime-dir "$d/run" daemon --config "$d/handoff.toml" \
      --interface lo --liveness 30s --cloud "$CLOUD" >>"$d/daemon.log" 2>&1 &
  }
  t0=$(now)
  for i in $(seq "$KILLS"); do
    daemon
    pid=$!
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", 0.050 + r / 32768 * 0.600 }')"
    if kill -0 "$pid" 2>/dev/null; then live=$((live + 1)); else early=$((early + 1)); fi
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ $((i % (KILLS / 10 > 0 ? KILLS / 10 : 1))) = 0 ] &&
      say "$i kills; events at the cloud: $(cloud_events "$d")"
  done
  before=$(cloud_events "$d")
  say "$live daemons SIGKILLed while running, $early had exited before their kill; $before/$EVENTS events at the cloud before the last run ($(elapsed "$t0") s)"
  t0=$(now)
  daemon
  pid=$!
  left=unknown
  for _ in $(seq 1200); do
    left=$("$bin" --runtime-dir "$d/run" health --json 2>/dev/null | jq -r '.relay.backlog // "unknown"')
    [ "$left" = 0 ] && break
    sleep 0.5
  done
  say "last daemon: backlog $left after $(elapsed "$t0") s"
  kill -TERM "$pid" 2>/dev/null
  wait_for "$pid" 30
  stop_cloud
  if check_counts "$d" "$EVENTS" && [ "$left" = 0 ] && [ "$wait_rc" = 0 ]; then
    pass "$counts after $live daemon kills mid-stream; the last daemon stopped cleanly"
  else
    fail "$counts; backlog $left; last daemon exit $wait_rc (log: $d/daemon.log)"
  fi
}

# ---------------------------------------------------- 2. cloud cut off
# $1: stop (SIGSTOP … SIGCONT) or kill (SIGKILL … restart).
cutoff_once() {
  local how=$1 d=$tmp/cutoff-$1 relay t0 at alive
  mkdir -p "$d"
  setup_cloud "$d" || { fail "$how: cannot set up the cloud"; return; }
  "$queue" "$d/state" lake "$EVENTS" >/dev/null || { fail "$how: cannot queue"; return; }
  start_cloud "$d" || { fail "$how: cloud did not start"; return; }
  t0=$(now)
  "$bin" --state-dir "$d/state" relay --cloud "$CLOUD" --timeout 900s --json >"$d/relay.json" 2>"$d/relay.log" &
  relay=$!
  at=0
  while [ "$at" -lt $((EVENTS / 5)) ] && kill -0 "$relay" 2>/dev/null; do
    sleep 0.1; at=$(cloud_events "$d")
  done
  kill -0 "$relay" 2>/dev/null || { stop_cloud; fail "$how: the relay finished before the cut ($at events): not mid-stream"; return; }
  if [ "$how" = stop ]; then kill -STOP "$cloud_pid"; else stop_cloud; fi
  say "$how: cloud cut off after $(elapsed "$t0") s with $at/$EVENTS events delivered; waiting $CUT s"
  sleep "$CUT"
  kill -0 "$relay" 2>/dev/null && alive=yes || alive=no
  if [ "$how" = stop ]; then kill -CONT "$cloud_pid"; else start_cloud "$d" || { fail "$how: cloud did not restart"; return; }; fi
  t0=$(now)
  wait_for "$relay" 600
  say "$how: cloud back; relay alive through the cut: $alive; it finished $(elapsed "$t0") s later, exit $wait_rc: $(cat "$d/relay.json")"
  stop_cloud
  if check_counts "$d" "$EVENTS" && [ "$wait_rc" = 0 ] && [ $alive = yes ]; then
    say "$how: $counts"; cut_ok+=("$how")
  else
    fail "$how: $counts; relay exit $wait_rc, alive through the cut: $alive (log: $d/relay.log)"
  fi
}

part_cutoff() {
  cut_ok=()
  cutoff_once stop
  cutoff_once kill
  [ ${#cut_ok[@]} = 2 ] && pass "$EVENTS events exact after a ${CUT} s SIGSTOP and a ${CUT} s SIGKILL of the cloud"
}

# ---------------------------------------------------------- 3. disk full
part_diskfull() {
  local d=$tmp/diskfull relay ok=1 queued lines t0 bl ev
  mkdir -p "$d/state"
  mount -t tmpfs -o size=2m,mode=0700 handoff-faults "$d/state" || { fail "cannot mount a tmpfs"; return; }
  setup_cloud "$d" || { fail "cannot set up the cloud"; return; }
  dd if=/dev/zero of="$d/state/ballast" bs=64k count=16 status=none
  "$queue" "$d/state" lake 100000000 >"$d/queue.out" 2>"$d/queue.err"
  local rc=$?
  queued=$(sed -n 's/^queued //p' "$d/queue.out")
  lines=$(wc -l <"$d/queue.err")
  say "queued $queued events, then exit $rc; df: $(df -k --output=used,avail "$d/state" | tail -1 | tr -s ' ') KiB used/avail"
  say "stderr ($lines line): $(cat "$d/queue.err")"
  if [ "$rc" != 1 ] || [ "$lines" != 1 ] || ! grep -qi 'disk.*full' "$d/queue.err" ||
     grep -qiE 'panick|backtrace' "$d/queue.err"; then
    ok=0; fail "the append error is not one clear disk-full line (exit $rc)"
  fi
  bl=$(backlog "$d")
  say "status --relay on the full disk: backlog $bl"
  [ "$bl" = "$queued" ] || { ok=0; fail "status --relay says backlog $bl, $queued were queued"; }

  start_cloud "$d" || { fail "cloud did not start"; return; }
  t0=$(now)
  "$bin" --state-dir "$d/state" relay --cloud "$CLOUD" --timeout 900s --json >"$d/relay.json" 2>"$d/relay.log" &
  relay=$!
  wait_for "$relay" "$FULL_WAIT"
  ev=$(cloud_events "$d")
  if [ "$wait_rc" = 124 ]; then
    fail "relay on the full disk: not finished after $FULL_WAIT s; $ev/$queued events applied at the cloud; its last error: $(grep -o 'error=.*' "$d/relay.log" | tail -1 | cut -c1-200)"
    ok=0
    rm -f "$d/state/ballast"
    say "ballast removed ($(df -k --output=avail "$d/state" | tail -1 | tr -d ' ') KiB free); waiting for the same relay"
    wait_for "$relay" 600
  fi
  say "relay exit $wait_rc after $(elapsed "$t0") s: $(cat "$d/relay.json")"
  stop_cloud
  if check_counts "$d" "$queued" && [ "$wait_rc" = 0 ]; then
    say "$counts"
    [ $ok = 1 ] && pass "one-line disk-full error after $queued appends; all $queued delivered, none twice"
  else
    fail "$counts; relay exit $wait_rc (log: $d/relay.log)"
  fi
}

# -------------------------------------------------------------- 4. churn
part_churn() {
  local d=$tmp/churn t0 k i pid starts=0 terms=0 kills=0 running
  local -a pids
  mkdir -p "$d"
  # The watch's lines, each prefixed with its arrival time (seconds since
  # t0, the clock of the actions file), through a FIFO to a stamper.
  t0=$(now)
  mkfifo "$d/watch.fifo"
  python3 -u -c '
import sys, time
t0 = float(sys.argv[1])
for line in sys.stdin:
    sys.stdout.write("%.2f %s" % (time.time() - t0, line))' "$t0" <"$d/watch.fifo" >"$d/watch.lines" &
  local stamper=$!
  "$bin" discover --watch --json --liveness "${LIVENESS}s" >"$d/watch.fifo" 2>"$d/watch.log" &
  local watch=$!
  start_fleet() {
    rm -f "$d/m$1.json"
    "$bin" sim --count "$FLEET_SIZE" --first-ip "127.0.$((10 + $1)).1" --seed "$((100 + $1))" --no-probe \
      --instance-name "Fleet $1" --state-dir "$d/sim$1" --manifest "$d/m$1.json" >>"$d/sim$1.log" 2>&1 &
    pids[$1]=$!
    starts=$((starts + 1))
    echo "$(elapsed "$t0") start $1" >>"$d/actions"
  }
  stop_fleet() { # $1 fleet, $2 TERM or KILL
    kill -"$2" "${pids[$1]}" 2>/dev/null; wait "${pids[$1]}" 2>/dev/null
    pids[$1]=
    echo "$(elapsed "$t0") $2 $1" >>"$d/actions"
  }
  for k in $(seq 0 $((FLEETS - 1))); do pids[$k]=; [ $((RANDOM % 2)) = 0 ] && start_fleet "$k"; done
  while awk -v a="$t0" -v b="$(now)" -v l="$CHURN_S" 'BEGIN { exit !(b - a < l) }'; do
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + r / 32768 * 2.8 }')"
    k=$((RANDOM % FLEETS))
    if [ -n "${pids[$k]}" ]; then
      if [ $((RANDOM % 2)) = 0 ]; then stop_fleet "$k" TERM; terms=$((terms + 1))
      else stop_fleet "$k" KILL; kills=$((kills + 1)); fi
    else
      start_fleet "$k"
    fi
  done
  running=()
  for k in $(seq 0 $((FLEETS - 1))); do [ -n "${pids[$k]}" ] && running+=("$k"); done
  say "$(elapsed "$t0") s of churn: $starts fleet starts, $terms SIGTERM stops, $kills SIGKILL stops; running at the end: fleets ${running[*]:-none} ($(( ${#running[@]} * FLEET_SIZE )) processors)"
  # Manifests are written once the fleet is up; a fleet started in the last
  # instant must have written its manifest before the truth is taken.
  for k in "${running[@]}"; do
    for _ in $(seq 100); do [ -s "$d/m$k.json" ] && break; sleep 0.1; done
  done
  local settle=$((3 * LIVENESS + 2))
  say "waiting ${settle} s (three liveness bounds) for the last removals"
  sleep "$settle"
  kill -TERM "$watch"; wait "$watch" 2>/dev/null; wait "$stamper"
  local manifests=()
  for k in "${running[@]}"; do manifests+=("$d/m$k.json"); done
  local report
  report=$(python3 - "$d/watch.lines" "$d/actions" "$LIVENESS" "${manifests[@]}" <<'PY'
import json, sys
watch, actions, liveness, manifests = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
# Fleet k owns 127.0.(10+k).0/24; its history: [(time, "start"|"TERM"|"KILL")].
history = {}
for line in open(actions):
    t, what, k = line.split()
    history.setdefault(int(k), []).append((float(t), what))
def fleet(p):
    return int(p["addresses"][0].split(".")[2]) - 10
def last_action(k, t):
    done = [a for a in history.get(k, []) if a[0] <= t]
    return done[-1] if done else (None, None)
inv, counts, false_removals, latency = {}, {}, [], {"TERM": [], "KILL": []}
for line in open(watch):
    t, rest = line.split(" ", 1)
    t, e = float(t), json.loads(rest)
    counts[e["event"]] = counts.get(e["event"], 0) + 1
    p = e["processor"]
    if e["event"] == "removed":
        inv.pop(p["id"], None)
        k = fleet(p)
        at, what = last_action(k, t)
        stops = [a[0] for a in history.get(k, []) if a[0] <= t and a[1] != "start"]
        if what in latency:
            latency[what].append(t - at)
        elif what == "start" and (not stops or t - stops[-1] > 3 * liveness + 2):
            # Running, and its last stop (if any) three liveness bounds
            # ago: not a late removal of the previous run, a false one.
            false_removals.append((t, p["id"], p["addresses"], at))
    else:
        inv[p["id"]] = p
truth = {}
for m in manifests:
    for p in json.load(open(m)):
        truth[p["id"]] = p
missing = sorted(set(truth) - set(inv))
extra = sorted(set(inv) - set(truth))
moved = sorted(i for i in set(truth) & set(inv)
               if sorted(truth[i]["addresses"]) != sorted(inv[i]["addresses"]))
print("watch lines: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
print(f"inventory {len(inv)}, truth {len(truth)}, missing {len(missing)}, extra {len(extra)}, wrong addresses {len(moved)}, false removals {len(false_removals)}")
for what, name in (("TERM", "SIGTERM (goodbye)"), ("KILL", "SIGKILL (no goodbye)")):
    v = sorted(latency[what])
    if v:
        print(f"removal after {name}: {len(v)} removals, median {v[len(v) // 2]:.1f} s, max {v[-1]:.1f} s")
for t, i, addrs, at in false_removals:
    print(f"false removal at {t:.1f} s: {i} {addrs}, its fleet running since {at:.1f} s")
for i in missing:
    print(f"missing {i} {truth[i]['addresses']} ({truth[i]['instance']})")
for i in extra:
    print(f"extra {i} {inv[i]['addresses']} ({inv[i]['instance']})")
for i in moved:
    print(f"wrong addresses {i}: inventory {inv[i]['addresses']}, truth {truth[i]['addresses']}")
sys.exit(1 if missing or extra or moved or false_removals else 0)
PY
  )
  local rc=$?
  echo "$report" | sed "s/^/[$part] /"
  for k in "${running[@]}"; do stop_fleet "$k" TERM; done
  if [ $rc = 0 ]; then
    pass "inventory equals the truth ($(( ${#running[@]} * FLEET_SIZE )) processors) after $starts starts, $terms SIGTERM and $kills SIGKILL stops"
  else
    fail "inventory differs from the truth: $(echo "$report" | sed -n 2p) (actions: $d/actions, lines: $d/watch.lines)"
  fi
}

# ---------------------------------------------------------------- run
echo "faults: seed $seed; $([ $quick = 1 ] && echo quick || echo default) sizes; parts: ${parts[*]}; working directory $tmp"
for part in "${parts[@]}"; do
  started=$(now)
  "part_$part"
  echo "[$part] took $(elapsed "$started") s"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "faults: FAILED: $(printf '%s\n' "${failed[@]}" | sort -u | tr '\n' ' ')"
  exit 1
fi
echo "faults: all parts passed"
