"""``python -m mlpipeline.steps STEP ...``: the data-plane entrypoint of Job pods and the local runner.

Exit codes: 0 done, 2 the step failed (the message is on stderr and in OUT/result.json),
3 the evaluation gate refused the model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from typing import Any

from mlpipeline.api.manifest import ManifestError, parse_spec
from mlpipeline.api.models import MLPipelineSpec
from mlpipeline.protocol import EXIT_FAILED, EXIT_GATE, RESULT_FILE
from mlpipeline.steps import artifacts
from mlpipeline.steps.artifacts import StepError

# what a succeeded step tells the operator
REPORTED = ("summary", "metrics", "version", "tag", "labeling", "report", "data", "cached", "baseline")


def _spec(args: argparse.Namespace) -> MLPipelineSpec:
    if args.spec:
        document = json.loads(artifacts.read_bytes(args.spec))
    elif os.environ.get("MLPIPELINE_SPEC"):
        document = json.loads(os.environ["MLPIPELINE_SPEC"])
    else:
        raise StepError("no spec: pass --spec URI or set MLPIPELINE_SPEC")
    return parse_spec(document)


def execute(args: argparse.Namespace) -> dict[str, Any]:
    spec = _spec(args)
    step = args.step
    if step == "ingest":
        from mlpipeline.steps import ingest

        if args.keyed:
            return ingest.run_keyed(spec, args.out, args.keyed, reuse=not args.no_cache)
        return ingest.run(spec, args.out)
    if step == "preprocess":
        from mlpipeline.steps import preprocess

        return preprocess.run(spec.preprocess, args.data, args.out)
    if step == "tune":
        from mlpipeline.steps import tune

        return tune.run(spec, args.data, args.preprocess, args.out)
    if step == "evaluate":
        from mlpipeline.steps import evaluate

        return evaluate.run(
            spec, args.data, args.preprocess, args.tune, args.out, args.serving, args.serving_uri
        )
    if step in ("label", "merge"):
        from mlpipeline.steps import label

        if step == "label":
            served = (args.served_from, args.served_to) if args.served_from and args.served_to else None
            return label.propose(
                spec, args.pipeline, args.model, args.model_uri, args.source, args.round, args.out, served
            )
        return label.merge(spec, args.pipeline, args.proposal, args.out, args.started)
    from mlpipeline.steps import package

    return package.run(
        args.pipeline, args.run, args.version, args.data, args.preprocess, args.evaluate, args.out
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mlpipeline.steps")
    p.add_argument("step", choices=["ingest", "preprocess", "tune", "evaluate", "package", "label", "merge"])
    p.add_argument("--spec", help="URI of the spec as JSON (default: $MLPIPELINE_SPEC)")
    p.add_argument("--out", required=True, help="URI this step writes to")
    p.add_argument(
        "--keyed",
        metavar="SPEC_KEY",
        help="ingest: write to OUT-<key of SPEC_KEY and the data's fingerprint>, reusing an output there",
    )
    p.add_argument("--no-cache", action="store_true", help="ingest with --keyed: reuse no earlier output")
    for name in ("data", "preprocess", "tune", "evaluate"):
        p.add_argument(f"--{name}", help=f"URI of the {name} step's output")
    p.add_argument("--pipeline", default="pipeline")
    p.add_argument("--run", default="local")
    p.add_argument("--version", default="0")
    evaluate = p.add_argument_group("evaluate")
    evaluate.add_argument(
        "--serving", help="BentoML tag of the model that serves, measured beside the new one"
    )
    evaluate.add_argument("--serving-uri", help="its export in the artifact store")
    labeling = p.add_argument_group("labeling rounds (label, merge)")
    labeling.add_argument("--model", help="label: BentoML tag of the model that labels")
    labeling.add_argument("--model-uri", help="label: its export in the artifact store")
    labeling.add_argument("--source", action="append", default=[], help="label: an unlabeled file (repeat)")
    labeling.add_argument("--round", help="label: the round's id")
    labeling.add_argument("--served-from", help="label: only captures made from this time (a drift round)")
    labeling.add_argument("--served-to", help="label: ... to this time")
    labeling.add_argument("--proposal", help="merge: URI of the label step's output")
    labeling.add_argument(
        "--started", help="merge: the round's start (RFC 3339), where its deadline counts from"
    )
    return p


def stop_on_sigterm() -> None:
    """In a pod the step is PID 1, which ignores SIGTERM unless it handles it: without this, a
    deleted pod (a superseded run, a node drain) would hold on for its whole grace period."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    args = parser().parse_args(argv)
    started = time.time()
    result: dict[str, Any]
    code = 0
    try:
        result = {"ok": True, **execute(args)}
    except ManifestError as exc:
        result, code = {"ok": False, "message": str(exc)}, EXIT_FAILED
    except StepError as exc:
        from mlpipeline.steps.evaluate import GateFailed

        code = EXIT_GATE if isinstance(exc, GateFailed) else EXIT_FAILED
        result = {"ok": False, "message": str(exc), "gateFailed": code == EXIT_GATE}
    result["seconds"] = round(time.time() - started, 3)
    try:
        # A reused output keeps the result it was made with; a keyed ingest that failed has no
        # output of its own (it reports through its exit code and termination message).
        if not result.get("cached") and not (args.keyed and not result["ok"]):
            artifacts.write_json(artifacts.join(str(result.get("out", args.out)), RESULT_FILE), result)
    except OSError as exc:
        print(f"warning: cannot write {RESULT_FILE}: {exc}", file=sys.stderr)
    if not result["ok"]:
        print(f"error: {result['message']}", file=sys.stderr)
        terminate_with(str(result["message"]))
    else:
        print(result.get("summary", "done"))
        terminate_with(json.dumps({k: result[k] for k in REPORTED if k in result}, default=str))
    return code


def terminate_with(message: str) -> None:
    """Kubernetes shows this as the container's termination message: the failure for people, the
    result (JSON) for the operator, which reads no artifact store."""
    termination_log = os.environ.get("MLP_TERMINATION_LOG")
    if termination_log:
        with contextlib.suppress(OSError), open(termination_log, "w") as handle:
            handle.write(message[:4000])


if __name__ == "__main__":
    sys.exit(main())
