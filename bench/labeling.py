"""Automated labeling, measured: accuracy reached against the human labels spent.

    python -m bench.labeling

A pool of unlabeled records whose truth is known (scikit-learn's bundled 8x8 digit images, 64 pixel
features, 10 classes) and a small labeled seed. For each budget of human labels, in the same run:
  * automated: the model trained on the seed labels what it is sure of (spec.labeling's selection:
    minConfidence, class cap, uncertainty ranking, audit), people (the known truth) label the most
    uncertain records up to the budget plus the audit sample; the merged labels train the next model;
  * random: people label a random sample of the pool of the same size (budget + audit);
  * everything: people label the whole pool (the ceiling, once).
The held-out accuracy of each model, the human labels spent and the ratios are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pandas as pd
from mlpipeline.api.models import LabelingSpec
from mlpipeline.labeling.merge import merge
from mlpipeline.labeling.select import select
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

LABEL = "digit"


def fit_score(train: pd.DataFrame, test: pd.DataFrame) -> tuple[Any, float]:
    model = LogisticRegression(max_iter=2000)
    model.fit(train.drop(columns=[LABEL]).to_numpy(), train[LABEL].to_numpy())
    score = float(model.score(test.drop(columns=[LABEL]).to_numpy(), test[LABEL].to_numpy()))
    return model, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed-rows", type=int, default=50)
    parser.add_argument("--budgets", default="25,50,100,200")
    parser.add_argument("--min-confidence", type=float, default=0.95)
    args = parser.parse_args()
    digits = load_digits(as_frame=True)
    frame = digits.data.copy()
    frame[LABEL] = [str(t) for t in digits.target]
    rest, test = train_test_split(frame, test_size=0.25, random_state=0, stratify=frame[LABEL])
    seed, pool = train_test_split(rest, train_size=args.seed_rows, random_state=0, stratify=rest[LABEL])
    pool = pool.reset_index(drop=True)
    truth = pool[LABEL].tolist()
    features = pool.drop(columns=[LABEL])
    model, seed_score = fit_score(seed, test)
    classes = [str(c) for c in model.classes_]
    probabilities = model.predict_proba(features.to_numpy())
    _, everything = fit_score(pd.concat([seed, pool]), test)
    rows = []
    for budget in (int(b) for b in args.budgets.split(",")):
        spec = LabelingSpec(
            source="-", into="-", min_confidence=args.min_confidence, budget=budget, max_class_share=0.3
        )
        chosen = select(probabilities, classes, spec, seed=0)
        asked = {p.row for p in chosen.human} | {p.row for p in chosen.audit}
        merged = merge(features, chosen, {r: truth[r] for r in asked}, LABEL, spec)
        _, automated = fit_score(pd.concat([seed, merged.frame]), test)
        auto_rows = [i for i, source in enumerate(merged.provenance) if source == "auto"]
        auto_truth = [truth[p.row] for p in chosen.auto if p.row not in asked]
        auto_wrong = sum(p.label != truth[p.row] for p in chosen.auto if p.row not in asked)
        sample = pool.sample(n=len(asked), random_state=0)
        _, random_score = fit_score(pd.concat([seed, sample]), test)
        rows.append(
            {
                "humanLabels": len(asked),
                "autoLabels": len(auto_rows),
                "autoLabelError": round(auto_wrong / len(auto_truth), 4) if auto_truth else None,
                "auditDisagreement": merged.audit_disagreement,
                "accuracyAutomated": round(automated, 4),
                "accuracyRandom": round(random_score, 4),
                "ratioAutomatedToRandom": round(automated / random_score, 4),
                "ratioAutomatedToEverything": round(automated / everything, 4),
                "humanLabelsVsEverything": round(len(asked) / len(pool), 4),
            }
        )
    print(
        json.dumps(
            {
                "benchmark": "labeling",
                "dataset": "sklearn digits (8x8 images as 64 features, 10 classes)",
                "seedRows": len(seed),
                "poolRows": len(pool),
                "testRows": len(test),
                "minConfidence": args.min_confidence,
                "accuracySeedOnly": round(seed_score, 4),
                "accuracyEverything": round(everything, 4),
                "humanLabelsEverything": len(pool),
                "budgets": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
