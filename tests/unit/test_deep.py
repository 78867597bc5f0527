"""The deep-learning families (PyTorch on the CPU: no GPU here, and a trained network is pickled
to the CPU so it loads anywhere), xgboost, and images as data."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from mlpipeline.api.models import SearchParam
from mlpipeline.deep.estimators import TorchCNNClassifier, TorchMLPClassifier, TorchMLPRegressor
from mlpipeline.serving.validation import UnreadableRecords, clean_records
from mlpipeline.steps import images
from mlpipeline.steps.artifacts import StepError
from mlpipeline.steps.estimators import build_estimator, max_epochs, trains_by_epoch
from PIL import Image
from sklearn.datasets import load_digits, make_regression

from tests.conftest import example
from tests.unit.test_api import errors_of


def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return (data.images.reshape(len(data.images), -1) / 16.0)[:600], data.target[:600]


def test_training_is_epoch_by_epoch_and_seeded() -> None:
    features, target = digits()
    first = TorchMLPClassifier(epochs=3, random_state=1)
    assert list(first.epochs_fit(features, target)) == [1, 2, 3]
    again = TorchMLPClassifier(epochs=3, random_state=1).fit(features, target)
    other = TorchMLPClassifier(epochs=3, random_state=2).fit(features, target)
    assert np.allclose(first.predict_proba(features), again.predict_proba(features))
    assert not np.allclose(first.predict_proba(features), other.predict_proba(features))


def test_a_cnn_learns_digits_and_survives_pickling(tmp_path: Path) -> None:
    features, target = digits()
    model = TorchCNNClassifier(epochs=8, width=16, lr=3e-3, input_shape=(1, 8, 8)).fit(
        features[:500], target[:500]
    )
    accuracy = float((model.predict(features[500:]) == target[500:]).mean())
    assert accuracy > 0.85
    joblib.dump(model, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    assert np.allclose(loaded.predict_proba(features[500:]), model.predict_proba(features[500:]))
    assert next(loaded.network_.parameters()).device.type == "cpu"
    assert loaded.device_ == "cpu"  # no GPU here: the fake would be a lie, so trained where it ran


def test_a_cnn_without_an_image_shape_says_what_it_needs() -> None:
    features, target = digits()
    with pytest.raises(ValueError, match="one image column"):
        TorchCNNClassifier(epochs=1).fit(features, target)


def test_the_mlp_regressor_learns_a_noisy_linear_target() -> None:
    features, target = make_regression(400, 5, noise=5.0, random_state=0)
    model = TorchMLPRegressor(epochs=60, lr=3e-3).fit(features[:300], target[:300] * 100)
    predicted = model.predict(features[300:])
    residual = ((predicted - target[300:] * 100) ** 2).sum()
    total = ((target[300:] * 100 - (target[300:] * 100).mean()) ** 2).sum()
    assert 1 - residual / total > 0.9  # standardised targets: raw scale in the hundreds still learns


def test_context_fills_only_what_the_model_takes_and_the_params_leave_open() -> None:
    cnn = build_estimator("classification", "torch_cnn", {"width": 8}, 5, {"input_shape": (1, 8, 8), "x": 1})
    assert cnn.input_shape == (1, 8, 8) and cnn.width == 8 and cnn.random_state == 5
    assert trains_by_epoch(cnn)
    forest = build_estimator("classification", "random_forest", {}, 5, {"input_shape": (1, 8, 8)})
    assert not trains_by_epoch(forest) and "input_shape" not in forest.get_params()
    booster = build_estimator("classification", "xgboost", {"n_estimators": 20}, 5, {"device": "cpu"})
    assert booster.get_params()["device"] == "cpu" and not trains_by_epoch(booster)
    features, target = digits()
    assert (booster.fit(features[:500], target[:500]).predict(features[500:]) == target[500:]).mean() > 0.6


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({}, 20),
        ({"epochs": SearchParam(choice=[5, 30, 10])}, 30),
        ({"epochs": SearchParam(randint=[2, 9])}, 8),
        ({"epochs": SearchParam(uniform=[2, 12.5])}, 12),
    ],
)
def test_the_scheduler_horizon_is_the_most_epochs_a_trial_trains(
    space: dict[str, Any], expected: int
) -> None:
    assert max_epochs(TorchMLPClassifier(), space) == expected


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def test_images_read_the_same_from_a_file_base64_and_a_data_uri(tmp_path: Path) -> None:
    raw = png(np.arange(64).reshape(8, 8) * 4)
    (tmp_path / "a.png").write_bytes(raw)
    encoded = base64.b64encode(raw).decode()
    transform = images.ImageTransform((4, 4), 1).fit(pd.Series([str(tmp_path / "a.png")] * 3))
    assert transform.shape_ == (1, 4, 4)
    for ref in (str(tmp_path / "a.png"), encoded, "data:image/png;base64," + encoded):
        assert np.allclose(transform.transform(pd.Series([ref])), transform.transform(pd.Series([encoded])))
    assert transform.transform(pd.Series([encoded])).shape == (1, 16)
    assert images.is_inline(encoded) and not images.is_inline("images/7/0001.png")


def test_an_unreadable_image_fails_ingestion_naming_it(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(png(np.zeros((8, 8))))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    frame = pd.DataFrame({"image": [str(tmp_path / "ok.png"), str(tmp_path / "broken.png"), "gone.png"]})
    with pytest.raises(StepError) as caught:
        images.check_readable(frame, ["image"], (8, 8), 1)
    assert "2 images cannot be read" in str(caught.value) and "broken.png" in str(caught.value)


def test_a_folder_per_class_is_a_table_of_references_and_labels(tmp_path: Path) -> None:
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(2):
            (tmp_path / label / f"{i}.png").write_bytes(png(np.zeros((8, 8))))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    table = images.folder_table(str(tmp_path), "animal")
    assert sorted(table["animal"]) == ["cat", "cat", "dog", "dog"]
    assert all(ref.endswith(".png") for ref in table["image"])
    with pytest.raises(StepError, match="one folder per class"):
        images.folder_table(str(tmp_path / "cat"), "animal")


def test_serving_reads_images_as_base64_or_store_uris_and_never_a_local_path() -> None:
    encoded = base64.b64encode(png(np.zeros((8, 8)))).decode()
    assert clean_records({"image": "image"}, [{"image": encoded}]) == [{"image": encoded}]
    with pytest.raises(UnreadableRecords) as caught:
        clean_records(
            {"image": "image"},
            [{"image": "/etc/hostname"}, {"image": base64.b64encode(b"x" * 40).decode()}, {"image": 7}],
        )
    problems = {p.index: str(p) for p in caught.value.problems}
    assert "records[0].image" in problems[0] and "local path" in problems[0]
    assert "not a readable image" in problems[1]
    assert "is not an image" in problems[2]


def test_gpu_fractions_and_image_columns_are_checked_at_apply_time() -> None:
    doc = example("iris")
    doc["spec"]["train"]["resources"]["gpu"] = 1.5
    assert "not 1.5" in errors_of(doc)["spec.train.resources.gpu"]
    doc = example("digits")
    doc["spec"]["data"]["columns"] = {"image": "numeric"}
    assert "image" in errors_of(doc)["spec.data"]


def test_the_run_report_draws_trials_curves_and_the_confusion_matrix() -> None:
    from mlpipeline.steps.report import render

    trials = [
        {"config": {"lr": 0.001, "width": 16}, "accuracy": 0.9, "epochs": 4, "curve": [0.5, 0.7, 0.8, 0.9]},
        {
            "config": {"lr": 0.1, "width": 8},
            "accuracy": 0.4,
            "epochs": 1,
            "curve": [0.4],
            "stoppedEarly": True,
        },
        {"config": {"lr": 0.01, "width": 8}, "error": "CUDA <out of memory>"},
    ]
    report = {
        "metrics": {"accuracy": 0.75},
        "gate": {"metric": "accuracy", "min": 0.7, "max": None, "passed": True},
        "params": {"lr": 0.001, "width": 16},
        "testRows": 4,
    }
    page = render(trials, report, np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), ["cat", "dog"])
    assert page.count("data:image/png;base64,") == 3  # trials, learning curves, confusion matrix
    assert "Gate passed" in page and "accuracy = 0.7500" in page and "epochs</th>" in page
    assert "CUDA &lt;out of memory&gt;" in page  # escaped
    regression = render(trials[:1], report, np.array([1.0, 2.0]), np.array([1.5, 1.5]), None)
    assert regression.count("data:image/png;base64,") == 3  # trials, curves, residuals


def test_a_missing_deep_extra_is_named_with_the_way_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mlpipeline.steps.estimators import load_object

    monkeypatch.setitem(sys.modules, "torch", None)  # as on an install without the extra
    monkeypatch.delitem(sys.modules, "mlpipeline.deep.estimators")
    with pytest.raises(ValueError) as caught:
        load_object("mlpipeline.deep.estimators:TorchCNNClassifier")
    assert "needs torch, which is not installed" in str(caught.value)
    assert "mlpipeline-operator[deep]" in str(caught.value)
