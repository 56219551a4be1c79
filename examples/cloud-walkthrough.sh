#!/usr/bin/env bash
# The reference cloud through its operator CLI: a Place is created with its
# processor's CA, shared, linked, claimed with the certificate the processor
# signed after its button press, and released.
#
# Run it inside a private network (the simulated processor advertises over
# mDNS), from an empty directory, with `handoff` on PATH:
#   handoff lan -- bash examples/cloud-walkthrough.sh
set -euo pipefail
# The simulator stops (and says its goodbyes) before the script returns.
trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT
export HANDOFF_CLOUD_DATA=$PWD/cloud

# One simulated RadioRA 3 processor whose button presses itself after 1 s.
handoff --state-dir site sim --count 1 --seed 7 --auto-press 1s --manifest fleet.json 2>sim.log &
while [ ! -s fleet.json ]; do sleep 0.1; done
read -r ID SERIAL MAC <<<"$(python3 -c 'import json; p = json.load(open("fleet.json"))[0]; print(p["id"], p["serial"], p["mac"])')"

# The designer starts the project with remote services and transfers it to
# the processor: the cloud now knows the processor's CA.
handoff cloud place create --id lake-house --as designer@example.com --remote-services \
  --project-file project.json --serial "$SERIAL" --mac "$MAC" \
  --processor-ca "site/sim/processors/$ID/ca-cert.pem"
handoff cloud share lake-house --as designer@example.com --to pro@example.com --for 30d
LINK=$(handoff cloud link new lake-house --as designer@example.com --for 7d)
handoff cloud link redeem lake-house "$LINK" --as tech@example.com

# On site: the button handshake (pairing: the cloud is not told); the
# processor signs our certificate.
handoff --state-dir site pair "$ID" --pairing-identity site/sim/pairing-identity
# That certificate is the proof: the homeowner's claim.
handoff cloud claim --as home@example.com --serial "$SERIAL" --mac "$MAC" \
  --proof "site/credentials/$SERIAL/cert.pem"
# Links stop working once a homeowner has claimed the system (exit code 3: refused).
handoff cloud link redeem lake-house "$LINK" --as late@example.com || echo "refused, exit $?"
handoff cloud status "$SERIAL" --as stranger@example.com
handoff cloud access list lake-house --as home@example.com
# Remove Home from Account: the system can be claimed again.
handoff cloud release lake-house --as home@example.com
handoff cloud status "$MAC" --as stranger@example.com
