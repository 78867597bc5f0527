#!/usr/bin/env bash
# `make test`: the four tiers in two streams that run at the same time, since each waits much of its
# time (servers starting, canary intervals, pods scheduled) and the machine has two cores:
#   local: lint, CRD staleness, then the unit and workload tiers        (output shown as it comes)
#   kube:  the control plane build, then the cluster tier while the real node's parts and the image
#          build, then the real tier                                   (output in .test-logs/kube.log,
#          shown when the local stream ends)
# What both streams need (the venv, Label Studio, Debian's Prometheus) is installed first, so that
# no two installs (apt, or uv into one venv) run at once. No skip is allowed (MLP_STRICT_SKIPS, tests/conftest.py). The last
# line sums both streams: "total: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
LOGS=.test-logs
export MLP_STRICT_SKIPS=1
START=$(date +%s)
since() { echo "$(($(date +%s) - START))s"; }

rm -rf "$LOGS" && mkdir -p "$LOGS"
make --no-print-directory install label-studio prometheus || exit 1

(
  # The cluster tier needs only the control plane: it runs while the real node's parts and the
  # image build (the real tier waits for them).
  wait_deep() { until [[ -f $LOGS/deep.rc ]]; do sleep 2; done; [[ $(cat "$LOGS/deep.rc") == 0 ]]; }
  make --no-print-directory control-plane || exit 1
  echo "[kube stream] control plane built at $(since)"
  make --no-print-directory node-binaries image >"$LOGS/node-builds.log" 2>&1 &
  builds=$!
  wait_deep && $BIN/pytest --durations=15 --junitxml="$LOGS/cluster.xml" tests/cluster
  cluster_rc=$?
  wait "$builds" || { echo "[kube stream] node or image build failed:"; cat "$LOGS/node-builds.log"; exit 1; }
  echo "[kube stream] node and image built; real tier starts at $(since)"
  $BIN/pytest --durations=15 --junitxml="$LOGS/real.xml" tests/real
  real_rc=$?
  [[ $cluster_rc == 0 && $real_rc == 0 ]]
) >"$LOGS/kube.log" 2>&1 &
kube=$!

# The deep extra goes into the venv both streams' pytest runs from: the kube stream's waits for it.
make --no-print-directory install-deep
echo $? >"$LOGS/deep.rc"
[[ $(cat "$LOGS/deep.rc") == 0 ]] && make --no-print-directory lint crds-check \
  && echo "[local stream] lint done at $(since)" \
  && $BIN/pytest --durations=25 --junitxml="$LOGS/local.xml" tests/unit tests/workload
local_rc=$?
echo "[local stream] ended ($local_rc) at $(since); waiting for the kube stream (.test-logs/kube.log)"
wait "$kube"
kube_rc=$?
echo "================ kube stream: cluster and real tiers ($kube_rc) ================"
cat "$LOGS/kube.log"
echo "[make test] both streams ended at $(since)"
$BIN/python - "$LOGS/local.xml" "$LOGS/cluster.xml" "$LOGS/real.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

passed = failed = skipped = 0
for report in map(Path, sys.argv[1:]):
    if not report.exists():
        failed += 1  # a stream that never reached its tests
        print(f"{report.name}: missing: that stream failed before its tests ran")
        continue
    for suite in ET.parse(report).getroot().iter("testsuite"):
        tests, skips = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        fails = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        passed, failed, skipped = passed + tests - skips - fails, failed + fails, skipped + skips
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
EOF
[[ $local_rc == 0 && $kube_rc == 0 ]]
