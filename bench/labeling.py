"""Automated labeling, measured: accuracy reached against the human labels spent.

    python -m bench.labeling [--seeds 5]

A pool of unlabeled records whose truth is known (scikit-learn's bundled 8x8 digit images, 64 pixel
features, 10 classes) and a small labeled seed. For each budget of human labels, in the same run:
  * automated: the model trained on the seed labels what it is sure of (spec.labeling's selection:
    minConfidence, class cap, uncertainty ranking, audit), people (the known truth) label the most
    uncertain records up to the budget plus the audit sample; the merged labels train the next model;
  * random: people label a random sample of the pool of the same size (budget + audit);
  * everything: people label the whole pool (the ceiling, once).
The held-out accuracy of each model, the human labels spent and the ratios (automated to random, to
everything, both from the same seed) are printed as JSON: their median and spread (min, max) over
--seeds seeds of the split, the selection and the random sample (one random sample is one draw).
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

from bench.stats import summarise

LABEL = "digit"


def fit_score(train: pd.DataFrame, test: pd.DataFrame) -> tuple[Any, float]:
    model = LogisticRegression(max_iter=2000)
    model.fit(train.drop(columns=[LABEL]).to_numpy(), train[LABEL].to_numpy())
    score = float(model.score(test.drop(columns=[LABEL]).to_numpy(), test[LABEL].to_numpy()))
    return model, score


def one_seed(frame: pd.DataFrame, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    rest, test = train_test_split(frame, test_size=0.25, random_state=seed, stratify=frame[LABEL])
    seed_rows, pool = train_test_split(
        rest, train_size=args.seed_rows, random_state=seed, stratify=rest[LABEL]
    )
    pool = pool.reset_index(drop=True)
    truth = pool[LABEL].tolist()
    features = pool.drop(columns=[LABEL])
    model, seed_score = fit_score(seed_rows, test)
    classes = [str(c) for c in model.classes_]
    probabilities = model.predict_proba(features.to_numpy())
    _, everything = fit_score(pd.concat([seed_rows, pool]), test)
    budgets = {}
    for budget in (int(b) for b in args.budgets.split(",")):
        spec = LabelingSpec(
            source="-", into="-", min_confidence=args.min_confidence, budget=budget, max_class_share=0.3
        )
        chosen = select(probabilities, classes, spec, seed=seed)
        asked = {p.row for p in chosen.human} | {p.row for p in chosen.audit}
        merged = merge(features, chosen, {r: truth[r] for r in asked}, LABEL, spec)
        _, automated = fit_score(pd.concat([seed_rows, merged.frame]), test)
        auto_rows = [i for i, source in enumerate(merged.provenance) if source == "auto"]
        auto_truth = [truth[p.row] for p in chosen.auto if p.row not in asked]
        auto_wrong = sum(p.label != truth[p.row] for p in chosen.auto if p.row not in asked)
        sample = pool.sample(n=len(asked), random_state=seed)
        _, random_score = fit_score(pd.concat([seed_rows, sample]), test)
        budgets[str(budget)] = {
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
    return {
        "seedRows": len(seed_rows),
        "poolRows": len(pool),
        "testRows": len(test),
        "accuracySeedOnly": round(seed_score, 4),
        "accuracyEverything": round(everything, 4),
        "humanLabelsEverything": len(pool),
        "budgets": budgets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed-rows", type=int, default=50)
    parser.add_argument("--budgets", default="25,50,100,200")
    parser.add_argument("--min-confidence", type=float, default=0.95)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0, 1, ...: the figures' spread")
    args = parser.parse_args()
    digits = load_digits(as_frame=True)
    frame = digits.data.copy()
    frame[LABEL] = [str(t) for t in digits.target]
    print(
        json.dumps(
            {
                "benchmark": "labeling",
                "dataset": "sklearn digits (8x8 images as 64 features, 10 classes)",
                "minConfidence": args.min_confidence,
                "seeds": args.seeds,
                **summarise([one_seed(frame, seed, args) for seed in range(args.seeds)]),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
