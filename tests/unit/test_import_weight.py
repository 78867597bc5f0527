"""The operator is the control plane: importing its entry point must not load the data plane's
libraries (they cost the operator hundreds of megabytes and seconds of start-up), nor the
kubernetes client library (18 MB: kube/connection.py talks to the API server)."""

from __future__ import annotations

import json
import subprocess
import sys

DATA_PLANE = {"sklearn", "pandas", "joblib", "ray", "bentoml", "numpy", "scipy", "pyarrow", "torch"}


def test_the_operator_loads_no_data_plane_library() -> None:
    code = (
        "import json, sys; import mlpipeline.cli; mlpipeline.cli.without_kubernetes_client(); "
        "import mlpipeline.controller.handlers; "
        "print(json.dumps(sorted({m.split('.')[0] for m, v in sys.modules.items() if v is not None})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "kopf" in loaded and "kubernetes" not in loaded, "kopf must not drag in the client library"
    assert loaded & DATA_PLANE == set()
