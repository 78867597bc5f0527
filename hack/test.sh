#!/usr/bin/env bash
# `make test`: the four tiers in two streams that run at the same time, since each waits much of its
# time (servers starting, canary intervals, pods scheduled) and the machine has two cores:
#   local: lint, CRD staleness, then the unit and workload tiers        (output shown as it comes)
#   kube:  the control plane's core build, then one cluster for both cluster-facing tiers:
#            the cluster tier (kwok's nodes)                             .test-logs/cluster.log
#            beside it, once helm, KubeRay, the real node's parts and the image are built (in the
#            background), the real tier and the helm tests            .test-logs/real.log
#            then, alone, the tests marked `serial` (they restart the control plane or run KubeRay's
#            operator, which acts on every namespace)                   .test-logs/serial.log
#          (shown when the local stream ends; the stream's own steps in .test-logs/kube.log)
# What both streams need (the venv, Label Studio, Debian's Prometheus) is installed first, so that
# no two installs (apt, or uv into one venv) run at once. No skip is allowed (MLP_STRICT_SKIPS,
# tests/conftest.py). The last line sums every tier: "total: N passed, N failed, N skipped".
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
  wait_deep() { until [[ -f $LOGS/deep.rc ]]; do sleep 2; done; [[ $(cat "$LOGS/deep.rc") == 0 ]]; }
  # What shares no compiled package with the control plane builds from the start, at a lower
  # priority than the control plane the cluster tier waits for; kubelet and kube-proxy after it, when
  # Go's build cache holds most of their packages.
  nice -n 10 bash -c 'hack/build-control-plane.sh extras && hack/build-node.sh others && make --no-print-directory image' \
    >"$LOGS/node-builds.log" 2>&1 &
  others=$!
  hack/build-control-plane.sh core || { kill "$others"; exit 1; }
  echo "[kube stream] control plane built at $(since)"
  hack/build-node.sh k8s >"$LOGS/node-k8s.log" 2>&1 &
  kubelet=$!
  hack/cluster.sh status >/dev/null 2>&1 && left_up=1 || left_up=0
  hack/cluster.sh up || exit 1  # the tiers' fixtures find it up and leave it to this script
  wait_deep || exit 1
  export MLP_SHARED_CLUSTER=1  # tests/cluster/conftest.py: another session's operators may be watching
  $BIN/pytest --durations=15 --junitxml="$LOGS/cluster.xml" -m "not serial" \
    --ignore=tests/cluster/test_helm.py tests/cluster >"$LOGS/cluster.log" 2>&1 &
  cluster=$!
  if wait "$kubelet" && wait "$others"; then
    echo "[kube stream] helm, KubeRay, the node and the image built; real tier starts at $(since)"
    $BIN/pytest --durations=15 --junitxml="$LOGS/real.xml" tests/cluster/test_helm.py tests/real \
      >"$LOGS/real.log" 2>&1
    real_rc=$?
  else
    echo "[kube stream] a build failed:"; cat "$LOGS/node-builds.log" "$LOGS/node-k8s.log"; real_rc=1
  fi
  wait "$cluster"
  cluster_rc=$?
  echo "[kube stream] cluster and real tiers ended ($cluster_rc, $real_rc) at $(since); serial tests start"
  MLP_SHARED_CLUSTER= $BIN/pytest --durations=5 --junitxml="$LOGS/serial.xml" -m serial tests/cluster >"$LOGS/serial.log" 2>&1
  serial_rc=$?
  (( left_up )) || hack/cluster.sh down >/dev/null 2>&1
  [[ $cluster_rc == 0 && $real_rc == 0 && $serial_rc == 0 ]]
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
for log in cluster real serial kube; do
  echo "================ $log (.test-logs/$log.log) ================"
  cat "$LOGS/$log.log" 2>/dev/null
done
echo "kube stream: $kube_rc"
echo "[make test] both streams ended at $(since)"
$BIN/python - "$LOGS"/{local,cluster,real,serial}.xml <<'EOF'
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
