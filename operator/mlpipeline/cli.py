"""The ``mlpipeline`` command: run a manifest locally, validate it, render the CRD, run the operator."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from mlpipeline.api.manifest import ManifestError, load_manifest

if TYPE_CHECKING:  # the local runner's modules load only when `run` does
    from mlpipeline.api.models import MLPipeline
    from mlpipeline.local.cycle import LocalCycle
    from mlpipeline.local.runner import LocalRunner
    from mlpipeline.local.serve import LocalServing


def cmd_validate(args: argparse.Namespace) -> int:
    code = 0
    for path in args.file:
        try:
            pipeline = load_manifest(path)
        except ManifestError as exc:
            print(exc, file=sys.stderr)
            code = 1
        else:
            print(f"{path}: MLPipeline {pipeline.metadata.name} is valid")
    return code


def _manifest(path: str) -> MLPipeline | None:
    """The manifest, or None with its errors (field paths and reasons) on stderr."""
    try:
        return load_manifest(path)
    except ManifestError as exc:
        print(exc, file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    from mlpipeline.local import prometheus
    from mlpipeline.local.cycle import LocalCycle
    from mlpipeline.local.runner import LocalRunner
    from mlpipeline.local.serve import RETRAINED, LocalServing

    console = Console(highlight=False, soft_wrap=True)
    pipeline = _manifest(args.file)
    if pipeline is None:
        return 1
    workdir = Path(args.workdir)
    runner = LocalRunner(
        pipeline,
        Path(args.file).resolve().parent,
        workdir,
        console,
        cpu_only=args.cpu_only,
        no_cache=args.no_cache,
    )
    console.print(f"[bold]MLPipeline {pipeline.metadata.name}[/] — workdir {runner.root}")
    spec = runner.spec
    serving = LocalServing(
        spec.serve,
        runner.bentoml_home,
        runner.root / "rollout",
        args.port or spec.serve.port,
        console,
        args.canary_load,
        spec.monitoring.server_env(runner.name, runner.capture),
    )
    cycle = LocalCycle(runner, console) if args.watch else None
    if cycle:
        problem = prometheus.missing() if spec.serve.enabled and not args.no_serve else None
        if problem:
            console.print(
                f"[red]--watch rolls each retrained model out as a canary judged by Prometheus. {problem}[/]"
            )
            return 1
        cycle.begin()
    try:
        while True:
            code = run_and_serve(args, runner, console, cycle, serving)
            if code != RETRAINED:
                return code
    finally:
        serving.close()


def run_and_serve(
    args: argparse.Namespace,
    runner: LocalRunner,
    console: Console,
    cycle: LocalCycle | None,
    serving: LocalServing,
) -> int:
    """One run (cached steps are reused), then serving on ``serving``'s port: the first version,
    the same one, or a canary rollout of a new one. Returns the exit code, or RETRAINED when
    --watch retrained (``serving`` goes on serving)."""
    from datetime import UTC, datetime

    from mlpipeline.api.models import Baseline
    from mlpipeline.engine import serving as engine
    from mlpipeline.local import prometheus
    from mlpipeline.local.runner import summary_table
    from mlpipeline.local.serve import load_serving, save_serving
    from mlpipeline.protocol import model_tag

    outcome = runner.run()
    if not outcome.ok:
        console.print(f"[red bold]{outcome.steps[-1].step} failed[/]: nothing was deployed")
        return int(outcome.exit_code)
    name, spec = runner.name, runner.spec.serve
    serve = spec.enabled and not args.no_serve
    console.print(summary_table(outcome, f"http://127.0.0.1:{serving.port}" if serve else None))
    if not serve or outcome.version is None:
        return 0
    if serving.stop.is_set():
        return 130  # interrupted while --watch retrained
    status = load_serving(runner.root)
    plan = engine.decide(spec, status, outcome.version, engine.ROUTER, None, None, datetime.now(UTC))
    ingest = outcome.steps[0].out
    if plan.phase == engine.CANARY and status is not None:
        candidate = model_tag(name, outcome.version)
        problem = prometheus.missing() if serving.rollout is None else None
        if problem:
            console.print(
                f"[red]{candidate} would be rolled out as a canary judged by Prometheus. {problem}; "
                "nothing was deployed[/]"
            )
            return 1
        compared = outcome.result("evaluate").get("baseline")
        baseline = Baseline.model_validate(compared) if compared else None
        final = serving.roll_out(status, candidate, ingest, baseline)
        if final is not None:
            save_serving(runner.root, final)
        if serving.stop.is_set():
            return 130
    else:
        save_serving(runner.root, plan.status)
        if plan.phase == engine.ROLLED_BACK:
            console.print(f"[yellow]{plan.message}: serving {plan.status.stable} instead[/]", soft_wrap=True)
        assert plan.status.stable is not None
        serving.serve(model_tag(name, plan.status.stable))
    serving.announce(ingest)
    return serving.wait(cycle.check if cycle else None)


def cmd_label(args: argparse.Namespace) -> int:
    from mlpipeline.api.models import LabelRoundPhase
    from mlpipeline.local.labeling import LocalLabeling
    from mlpipeline.local.runner import LocalRunner

    console = Console(highlight=False, soft_wrap=True)
    pipeline = _manifest(args.file)
    if pipeline is None:
        return 1
    if pipeline.spec.labeling is None:
        print(f"{args.file}: spec.labeling is not set", file=sys.stderr)
        return 1
    runner = LocalRunner(pipeline, Path(args.file).resolve().parent, Path(args.workdir), console)
    current = LocalLabeling(runner, console).round()
    if current is None:
        return 0
    return 0 if current.phase == LabelRoundPhase.merged else 2


def cmd_crd(args: argparse.Namespace) -> int:
    from mlpipeline.api.crd import render_crd

    text = render_crd()
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def without_kubernetes_client() -> None:
    """kopf imports the kubernetes client library whenever it is installed, though neither it nor the
    operator uses it (kube/connection.py): hidden from the operator's process, it saves 18 MB
    resident and 0.7 s at start. Must run before kopf is imported."""
    if "kubernetes" not in sys.modules:
        sys.modules["kubernetes"] = None  # type: ignore[assignment]


def cmd_operator(args: argparse.Namespace) -> int:
    import os

    without_kubernetes_client()
    from mlpipeline.controller.handlers import run_operator

    if args.metrics_port is not None:
        os.environ["MLP_METRICS_PORT"] = str(args.metrics_port)
    run_operator(args.namespace)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlpipeline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a manifest on this machine and serve the model")
    run.add_argument("-f", "--file", required=True, help="MLPipeline manifest (YAML)")
    run.add_argument("--workdir", default=".mlpipeline", help="where artifacts and the model store live")
    run.add_argument("--no-serve", action="store_true", help="stop after packaging")
    run.add_argument("--port", type=int, default=None, help="serving port (default: spec.serve.port)")
    run.add_argument(
        "--canary-load",
        type=float,
        default=10.0,
        help="requests/s of held-out records sent during a canary rollout (0: only your own traffic)",
    )
    run.add_argument("--cpu-only", action="store_true", help="train on the CPU even if the spec asks GPUs")
    run.add_argument(
        "--no-cache", action="store_true", help="run every step, reusing no earlier output (spec.steps.cache)"
    )
    run.add_argument(
        "--watch",
        action="store_true",
        help="keep the cycle going: while serving, retrain when spec.retrain's triggers fire, then roll out",
    )
    run.set_defaults(func=cmd_run)
    validate = sub.add_parser("validate", help="check manifests; every error with its field path")
    validate.add_argument("-f", "--file", required=True, action="append", help="manifest (repeatable)")
    validate.set_defaults(func=cmd_validate)
    label = sub.add_parser(
        "label", help="one labeling round: the last run's model labels new source files, people the rest"
    )
    label.add_argument("-f", "--file", required=True, help="MLPipeline manifest (YAML) with spec.labeling")
    label.add_argument("--workdir", default=".mlpipeline", help="the workdir of `mlpipeline run`")
    label.set_defaults(func=cmd_label)
    crd = sub.add_parser("crd", help="print the CustomResourceDefinition generated from the API models")
    crd.add_argument("-o", "--output", help="write to this file instead of stdout")
    crd.set_defaults(func=cmd_crd)
    operator = sub.add_parser("operator", help="run the Kubernetes operator against the current kubeconfig")
    operator.add_argument(
        "-n",
        "--namespace",
        help="watch one namespace, or those matching a glob such as 'team-*' (default: all)",
    )
    operator.add_argument("--metrics-port", type=int, help="Prometheus metrics port (default 8080; 0: off)")
    operator.set_defaults(func=cmd_operator)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
