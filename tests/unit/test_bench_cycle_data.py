"""bench/cycle's months: each changed world changes what its name says and nothing else, and the
rows every model is scored on are none of the rows any model trains on."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.cycle_data import BEHAVIOUR_CHANGE, DATASETS, INPUT_SHIFT


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_the_held_out_rows_are_no_rows_a_model_trains_on(name: str) -> None:
    dataset = DATASETS[name]
    months = dataset.months(INPUT_SHIFT, seed=1)
    features = months.held_out.columns.drop(dataset.label)
    trained = pd.concat([*months.old, months.batch])[features]
    overlap = months.held_out[features].merge(trained.drop_duplicates(), how="inner")
    assert overlap.empty, overlap
    assert len(months.old) >= 4 and len(months.batch) >= 400 and len(months.held_out) >= 400


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_shifted_month_moves_the_inputs_and_a_changed_one_the_labels(name: str) -> None:
    dataset = DATASETS[name]
    shifted, changed = dataset.months(INPUT_SHIFT, seed=0), dataset.months(BEHAVIOUR_CHANGE, seed=0)
    label = dataset.label
    old = pd.concat(shifted.old)
    # the inputs: some feature of the shifted month moves by a standard deviation; none of the
    # changed month's by 0.3 (sampling noise only)
    spread = old.drop(columns=label).std().replace(0, float("nan"))
    moved = ((shifted.batch.drop(columns=label).mean() - old.drop(columns=label).mean()) / spread).abs()
    kept = ((changed.batch.drop(columns=label).mean() - old.drop(columns=label).mean()) / spread).abs()
    assert moved.max() > 1 and kept.max() < 0.3, (moved.max(), kept.max())
    # the labels: the changed month's classes are in other proportions than the old months'
    old_share = old[label].value_counts(normalize=True)
    changed_share = changed.batch[label].value_counts(normalize=True).reindex(old_share.index, fill_value=0)
    assert (changed_share - old_share).abs().max() > 0.05
    # and another seed draws other months
    assert not dataset.months(INPUT_SHIFT, seed=1).batch.equals(shifted.batch)
