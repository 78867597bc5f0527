"""The cycle benchmark's data sets as months: old months from the original world, then a new month
from one of two changed worlds — its inputs shifted (the rule that labels them unchanged), or its
behaviour changed (the same inputs, another rule labels them). The new month is a batch of records
that lands unlabeled (its truth plays the person in the labeling round) and held-out labeled rows of
the same world (the score)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from examples import make_data

INPUT_SHIFT = "inputShift"
BEHAVIOUR_CHANGE = "behaviourChange"
SCENARIOS = (INPUT_SHIFT, BEHAVIOUR_CHANGE)


@dataclass(frozen=True)
class Months:
    old: list[pd.DataFrame]  # labeled, each a partition the first model trains on
    batch: pd.DataFrame  # the new month's records, with their truth (the batch lands without it)
    held_out: pd.DataFrame  # more of the new month, labeled: what every model is scored on


@dataclass(frozen=True)
class Sensors:
    """The sensors example (synthetic, binary, 3 features): six months of 400 readings; the new
    month's load runs 1.5 sd higher, or a new part fails on another rule."""

    name: str = "sensors"
    label: str = "failed"
    description: str = (
        "sensors example (synthetic, binary, 3 features): 6 months of 400; new month: 400 to label, "
        "1000 held out; inputShift: load +1.5 sd, same failure rule; behaviourChange: same inputs, "
        "failures follow load - temperature > 1.5 instead of load + temperature > 0"
    )

    def months(self, scenario: str, seed: int) -> Months:
        world = {"load_shifted": scenario == INPUT_SHIFT, "rule_changed": scenario == BEHAVIOUR_CHANGE}
        old = [
            make_data.sensor_month(i, load_shifted=False, rule_changed=False, seed=seed)
            for i in range(1, make_data.DRIFT_MONTH)
        ]
        batch = make_data.sensor_month(make_data.DRIFT_MONTH, 400, seed=seed, **world)
        held_out = make_data.sensor_month(make_data.DRIFT_MONTH + 1, 1000, seed=seed, **world)
        return Months(old, batch, held_out)


@dataclass(frozen=True)
class Digits:
    """scikit-learn's handwritten digits (public, 1,797 8x8 images as 64 pixel columns, 10 classes),
    shuffled by the seed: 400 rows held out, 400 the new month's batch, the rest four old months. The
    new month's ink is fainter (every pixel at half its intensity), or a changed rule files every 7
    as a 1."""

    name: str = "digits"
    label: str = "digit"
    description: str = (
        "scikit-learn digits (public, 64 pixel features, 10 classes): 4 months of ~250; new month: "
        "400 to label, 400 held out; inputShift: fainter ink (pixels x0.5), same labels; "
        "behaviourChange: same images, 7s are filed as 1s"
    )
    held_out_rows: int = 400
    batch_rows: int = 400
    old_months: int = 4

    def months(self, scenario: str, seed: int) -> Months:
        digits = load_digits(as_frame=True)
        frame = digits.data.copy()
        frame[self.label] = [str(t) for t in digits.target]
        frame = frame.iloc[np.random.default_rng(seed).permutation(len(frame))].reset_index(drop=True)
        new = frame.iloc[: self.held_out_rows + self.batch_rows].copy()
        if scenario == INPUT_SHIFT:
            pixels = new.columns.drop(self.label)
            new[pixels] = new[pixels] * 0.5
        else:
            new[self.label] = new[self.label].replace("7", "1")
        rest = frame.iloc[len(new) :]
        old = [rest.iloc[part] for part in np.array_split(np.arange(len(rest)), self.old_months)]
        return Months(
            old, new.iloc[self.held_out_rows :].reset_index(drop=True), new.iloc[: self.held_out_rows]
        )


DATASETS = {d.name: d for d in (Sensors(), Digits())}
