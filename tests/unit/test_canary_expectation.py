"""The canary judged against what evaluate expected (issue 24.2): evaluate measures the serving model
beside the new one on held-out rows neither trained on; the live prediction shift must match the
shift measured there, within a tolerance and what chance explains at the window's request counts;
a model that scored worse there fails. Real scikit-learn models, no Prometheus (the PromQL side is
the workload tests')."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlpipeline.api.models import AnalysisSpec, Baseline, MLPipelineSpec
from mlpipeline.controller.reconciler import serving_version
from mlpipeline.engine.plan import STEPS, StepInvocation
from mlpipeline.engine.reconcile import JobObservation, model_status
from mlpipeline.kube.jobs import OperatorSettings, build_step_job
from mlpipeline.monitoring.analysis import analyse, score_check, shift_check
from mlpipeline.monitoring.distance import chance_shift, prediction_shift
from mlpipeline.serving.bundle import ModelBundle
from mlpipeline.steps.baseline import compare, row_keys
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from examples.make_data import iris
from tests.conftest import EXAMPLES

DEFAULTS = AnalysisSpec()
SKEWED = {"setosa": 80.0, "virginica": 20.0}  # the real tier's traffic: 4 setosa for 1 virginica
SWAPPED = {"setosa": 20.0, "virginica": 80.0}  # what a model trained on swapped labels answers to it


def check(stable: dict[str, float], canary: dict[str, float], expected: float | None = None) -> Any:
    return shift_check("q", stable, canary, DEFAULTS.max_prediction_shift, expected)


def test_without_a_baseline_the_shift_is_judged_against_zero_as_before() -> None:
    held = check({"no": 700.0, "yes": 300.0}, {"no": 400.0, "yes": 600.0})  # PSI 0.36 on 1000 each
    assert held.verdict == "fail" and held.expected is None and held.value > DEFAULTS.max_prediction_shift
    assert "threshold" in held.describe()
    assert check({"no": 700.0, "yes": 300.0}, {"no": 690.0, "yes": 310.0}).verdict == "pass"


def test_the_shift_evaluate_expected_passes_and_a_departure_from_it_fails() -> None:
    stable, retrained = {"no": 700.0, "yes": 300.0}, {"no": 400.0, "yes": 600.0}
    expected = prediction_shift(stable, retrained)  # the very shift evaluate measured offline
    assert expected is not None and expected > DEFAULTS.max_prediction_shift
    passed = check({"no": 680.0, "yes": 320.0}, {"no": 420.0, "yes": 580.0}, expected)
    assert passed.verdict == "pass" and passed.expected == expected
    assert f"expected {expected:.4g} ±" in passed.describe()
    # the canary answers like the stable one where evaluate expected a change: not the model evaluated
    assert check(stable, {"no": 700.0, "yes": 300.0}, expected).verdict == "fail"
    # much more change than expected
    assert check(stable, {"no": 50.0, "yes": 950.0}, expected).verdict == "fail"


def test_a_model_with_swapped_labels_is_caught_on_skewed_traffic_although_evaluate_saw_no_shift() -> None:
    # Held-out rows are balanced: a swap of two classes leaves their share unchanged there.
    balanced = Counter(["setosa", "versicolor", "virginica"] * 10)
    expected = prediction_shift(balanced, balanced)
    assert expected == 0.0
    for requests in (10, 40, 200):  # from minRequests on
        scale = requests / 100
        stable = {k: v * scale for k, v in SKEWED.items()}
        canary = {k: v * scale for k, v in SWAPPED.items()}
        verdict = check(stable, canary, expected)
        assert verdict.verdict == "fail", (requests, verdict.describe())


def test_chance_explains_little_shifts_on_few_requests_and_nothing_on_many() -> None:
    assert check({"no": 7.0, "yes": 3.0}, {"no": 4.0, "yes": 6.0}).verdict == "pass"  # 10 requests each
    assert check({"no": 700.0, "yes": 300.0}, {"no": 400.0, "yes": 600.0}).verdict == "fail"
    assert chance_shift(2, 10, 10) > chance_shift(2, 100, 100) > chance_shift(2, 10_000, 10_000) > 0
    assert chance_shift(1, 10, 10) == chance_shift(3, 0, 10) == 0.0


@pytest.mark.parametrize(("classes", "requests"), [(2, 15), (2, 60), (3, 30), (10, 200)])
def test_one_distribution_sampled_twice_exceeds_the_chance_shift_about_one_time_in_a_hundred(
    classes: int, requests: int
) -> None:
    rng = np.random.default_rng(classes * 1000 + requests)
    p = rng.dirichlet(np.ones(classes) * 3)
    names = [str(i) for i in range(classes)]
    trials, over = 4000, 0
    for _ in range(trials):
        a, b = rng.multinomial(requests, p), rng.multinomial(requests, p)
        shift = prediction_shift(dict(zip(names, a, strict=True)), dict(zip(names, b, strict=True)))
        seen = int(((a > 0) | (b > 0)).sum())
        over += shift is not None and shift > chance_shift(seen, requests, requests)
    assert over / trials < 0.03, over / trials


def baseline(
    score: float | None, candidate: float | None, metric: str = "accuracy", error: float | None = None
) -> Baseline:
    return Baseline(
        version="v1", metric=metric, rows=120, score=score, candidate_score=candidate, score_error=error
    )


def test_a_model_that_scored_worse_than_the_serving_one_fails_and_one_as_good_passes() -> None:
    drop = DEFAULTS.max_score_drop
    worse = score_check(baseline(0.90, 0.84), drop)
    assert worse is not None and worse.verdict == "fail" and worse.stable == 0.90
    assert worse.threshold == pytest.approx(0.90 - drop)
    assert score_check(baseline(0.90, 0.89), drop).verdict == "pass"  # type: ignore[union-attr]
    assert score_check(baseline(0.74, 0.91), drop).verdict == "pass"  # type: ignore[union-attr]
    # lower is better for rmse
    assert score_check(baseline(10.0, 12.0, "rmse"), drop).verdict == "fail"  # type: ignore[union-attr]
    assert score_check(baseline(10.0, 8.0, "rmse"), drop).verdict == "pass"  # type: ignore[union-attr]
    assert score_check(baseline(None, 0.9), drop) is None
    # one row of 30 worse is chance (its bootstrap error), ten rows of 100 are not
    assert score_check(baseline(0.9667, 0.9333, error=0.033), drop).verdict == "pass"  # type: ignore[union-attr]
    assert score_check(baseline(0.90, 0.80, error=0.03), drop).verdict == "fail"  # type: ignore[union-attr]


def bundle(frame: pd.DataFrame, labels: pd.Series, classes: list[str]) -> ModelBundle:
    features = {c: "numeric" for c in frame.columns}
    scaler = StandardScaler().fit(frame)
    index = {c: i for i, c in enumerate(classes)}
    model = LogisticRegression(max_iter=500).fit(scaler.transform(frame), [index[v] for v in labels])
    schema = {"task": "classification", "label": "species", "features": features, "classes": classes}
    return ModelBundle(model, scaler, schema)


def test_evaluate_compares_both_models_on_held_out_rows_the_serving_one_did_not_train_on() -> None:
    data = iris()
    features = [c for c in data.columns if c != "species"]
    classes = sorted(data["species"].unique())
    old, held = train_test_split(data, test_size=0.3, random_state=0, stratify=data["species"])
    serving = bundle(old[features], old["species"], classes)
    serving.trained_on = row_keys(old, serving.schema)
    swap = {"setosa": "virginica", "virginica": "setosa"}
    swapped = data.assign(species=data["species"].map(lambda s: swap.get(s, s)))
    candidate = bundle(swapped[features], swapped["species"], classes)
    # The held-out rows of a later run: some the serving model trained on, some it never saw.
    later = pd.concat([old.head(20), held], ignore_index=True)
    result = compare(candidate, serving, "v1", later, "accuracy")
    unseen = held.merge(old.drop_duplicates(), how="left", indicator=True)["_merge"] == "left_only"
    assert result["rows"] == unseen.sum() < len(later)  # the rows it trained on are left out
    compared = held[unseen.to_numpy()]
    answers = serving.predict(compared[features].to_dict("records"))
    assert result["score"] == pytest.approx(np.mean([a["label"] for a in answers] == compared["species"]))
    assert result["score"] > 0.9 and result["candidateScore"] < 0.5  # true labels: the swap is worse
    assert result["predictionShift"] < 0.05  # balanced rows: a swap barely moves the class shares
    assert Baseline.model_validate(result).candidate_score == result["candidateScore"]
    # the difference is far beyond what chance makes on these rows: such a model fails
    assert 0 < result["scoreError"] < (result["score"] - result["candidateScore"]) / 3
    assert score_check(Baseline.model_validate(result), 0.02).verdict == "fail"  # type: ignore[union-attr]


def test_the_expected_shift_is_measured_on_the_newest_partition_where_live_traffic_comes_from() -> None:
    """bench/cycle rolled back a better model (digits, a month of fainter ink): on the held-out rows,
    mostly of older months, both models agreed, so evaluate expected no shift; live traffic of the new
    month showed a large one. Measured on the newest partition's rows (no label needed), the
    expectation is what live traffic of that month shows."""
    data = iris()
    features = [c for c in data.columns if c != "species"]
    classes = sorted(data["species"].unique())
    old, held = train_test_split(data, test_size=0.3, random_state=0, stratify=data["species"])
    serving = bundle(old[features], old["species"], classes)
    newest = data.assign(petal_length=data["petal_length"] + 2.0, petal_width=data["petal_width"] + 0.8)
    both = pd.concat([old, newest], ignore_index=True)
    candidate = bundle(both[features], both["species"], classes)  # retrained on the moved inputs
    on_held = compare(candidate, serving, "v1", held, "accuracy")
    on_newest = compare(candidate, serving, "v1", held, "accuracy", newest)
    assert on_newest["predictionShift"] > max(0.5, 3 * on_held["predictionShift"])
    assert on_newest["shiftRows"] == len(newest) and on_held["shiftRows"] == on_held["rows"]
    assert on_newest["score"] == on_held["score"]  # scores stay on the held-out rows people labeled
    assert Baseline.model_validate(on_newest).shift_rows == len(newest)
    live = [
        Counter(str(a["label"]) for a in m.predict(newest[features].to_dict("records")))
        for m in (serving, candidate)
    ]
    stable, canary = ({k: float(v) for k, v in c.items()} for c in live)
    assert shift_check("q", stable, canary, 0.2, on_newest["predictionShift"]).verdict == "pass"
    assert shift_check("q", stable, canary, 0.2, on_held["predictionShift"]).verdict == "fail"  # as before


def test_row_keys_are_the_same_for_the_same_row_read_again_and_differ_for_another_label() -> None:
    data = iris().head(5)
    schema = {"features": {c: "numeric" for c in data.columns if c != "species"}, "label": "species"}
    again = pd.read_csv(EXAMPLES / "data" / "iris.csv").head(5)[list(reversed(data.columns))]
    assert (row_keys(data, schema) == row_keys(again, schema)).all()
    relabeled = data.assign(species="virginica")
    assert not (row_keys(data, schema) == row_keys(relabeled, schema)).any()


SETTINGS = OperatorSettings(artifacts_uri="s3://bucket/mlp")


def spec() -> MLPipelineSpec:
    from mlpipeline.api.manifest import load_manifest

    return load_manifest(EXAMPLES / "iris.yaml").spec


def test_evaluate_is_told_the_serving_version_in_both_executors_and_its_result_reaches_the_status() -> None:
    outs = {s: f"s3://b/{s}" for s in STEPS}
    local = StepInvocation(
        "evaluate", outs["evaluate"], outs, "iris", "r2", "r2", serving="mlp-iris:r1"
    ).args()
    assert local[-2:] == ["--serving", "mlp-iris:r1"]
    tune = StepInvocation("tune", outs["tune"], outs, "iris", "r2", "r2", serving="mlp-iris:r1").args()
    assert "--serving" not in tune
    job = build_step_job(
        pipeline="iris", namespace="ml", uid="u", spec=spec(), run="r2", step="evaluate",
        settings=SETTINGS, serving="r1",
    )  # fmt: skip
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-4:] == [
        "--serving", "mlp-iris:r1", "--serving-uri", "s3://bucket/mlp/ml/iris/r1/package/model.bentomodel"
    ]  # fmt: skip
    result = {
        "metrics": {"accuracy": 0.95},
        "baseline": {"version": "r1", "metric": "accuracy", "rows": 30, "score": 0.9,
                     "candidateScore": 0.95, "predictionShift": 0.12},
    }  # fmt: skip
    evaluate = JobObservation(name="iris-r2-evaluate", run="r2", succeeded=1, complete=True, result=result)
    model = model_status(spec(), "r2", "s3://a", evaluate)
    assert model.baseline is not None and model.baseline.version == "r1"
    assert (model.baseline.prediction_shift, model.baseline.candidate_score) == (0.12, 0.95)


def test_only_a_version_that_serves_and_is_not_the_run_itself_is_compared() -> None:
    from mlpipeline.api.models import MLPipelineStatus, ServingStatus

    serving = MLPipelineStatus(serving=ServingStatus(stable="r1"))
    assert serving_version(spec(), serving, "r2") == "r1"
    assert serving_version(spec(), serving, "r1") is None
    assert serving_version(spec(), MLPipelineStatus(), "r2") is None
    disabled = spec()
    disabled.serve.enabled = False
    assert serving_version(disabled, serving, "r2") is None


def test_without_prometheus_a_worse_model_still_fails_and_another_stable_s_baseline_is_ignored() -> None:
    worse = baseline(0.95, 0.70)  # measured beside v1
    checks = {c.name: c for c in analyse(None, DEFAULTS, "v2", "v1", baseline=worse)}
    assert checks["prometheus"].verdict == "nodata" and checks["offlineScore"].verdict == "fail"
    assert [c.name for c in analyse(None, DEFAULTS, "v2", "v0", baseline=worse)] == ["prometheus"]
