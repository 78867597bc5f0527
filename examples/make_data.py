"""Writes the example data sets from what ships with scikit-learn (``make examples``), and the
monthly partitions of the cycle example: ``python examples/make_data.py --month 7 DIR`` lands month 7
(from month 7 on, the world has changed: see ``sensor_month``), the labeling example's seed
and unlabeled batch, and scikit-learn's digits as image files, a folder per digit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes, load_digits, load_iris


def iris() -> pd.DataFrame:
    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = [data.target_names[i] for i in data.target]
    return frame.drop(columns=["target"])


def diabetes() -> pd.DataFrame:
    frame = load_diabetes(as_frame=True, scaled=False).frame
    return frame.rename(columns={"target": "progression"})


def customers(rows: int = 600, seed: int = 7) -> pd.DataFrame:
    """Churn-like data with categorical columns and missing values."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "standard", "premium"], rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], rows)
    tenure = rng.integers(1, 72, rows).astype(float)
    monthly = np.round(rng.normal(50, 15, rows) + (plan == "premium") * 30, 2)
    tickets = rng.poisson(1.5, rows).astype(float)
    logit = -1.0 + 0.6 * tickets - 0.05 * tenure + 0.8 * (plan == "basic") + 0.02 * (monthly - 50)
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame(
        {
            "plan": plan,
            "region": region,
            "tenure_months": tenure,
            "monthly_charge": monthly,
            "support_tickets": tickets,
            "churned": churned,
        }
    )
    for column, fraction in (("region", 0.08), ("tenure_months", 0.05), ("monthly_charge", 0.05)):
        frame.loc[rng.random(rows) < fraction, column] = np.nan
    return frame


DRIFT_MONTH = 7


def sensor_month(
    index: int,
    rows: int = 400,
    *,
    load_shifted: bool | None = None,
    rule_changed: bool | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One month of a machine's sensor readings and whether it failed. Until month 6 failures
    follow ``load + temperature > 0``; from month 7 the load runs higher (a feature shift) and a new
    part fails on ``load - temperature > 1.5`` (a changed label rule). ``load_shifted`` and
    ``rule_changed`` choose either change for any month (the benchmark's worlds); ``seed`` draws
    another sample of the same world (0: the example's)."""
    rng = np.random.default_rng(1000 + index + 100_000 * seed)
    drifted = index >= DRIFT_MONTH
    shifted = drifted if load_shifted is None else load_shifted
    changed = drifted if rule_changed is None else rule_changed
    frame = pd.DataFrame(
        {
            "load": rng.normal(1.5 if shifted else 0.0, 1, rows),
            "temperature": rng.normal(0, 1, rows),
            "vibration": rng.normal(5, 2, rows),
        }
    )
    rule = "load - temperature > 1.5" if changed else "load + temperature > 0"
    frame["failed"] = np.where(frame.eval(rule), "yes", "no")
    return frame


def write_month(index: int, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"month=2026-{index:02d}.csv"
    sensor_month(index).to_csv(path, index=False)
    return path


SEED_ROWS, POOL_ROWS = 40, 600


def write_labeling(folder: Path) -> None:
    """The labeling example: 40 labeled readings to start from, and a batch of 600 without labels
    (the truth of that batch is ``sensor_month(2, POOL_ROWS)``, which tests use to play the person)."""
    (folder / "labeled").mkdir(parents=True, exist_ok=True)
    (folder / "unlabeled").mkdir(parents=True, exist_ok=True)
    sensor_month(1, SEED_ROWS).to_csv(folder / "labeled" / "0-seed.csv", index=False)
    pool = sensor_month(2, POOL_ROWS).drop(columns=["failed"])
    pool.to_csv(folder / "unlabeled" / "batch-01.csv", index=False)


def write_digits(folder: Path) -> None:
    """The 1,797 8x8 grayscale digits (values 0-16) as PNG files, ``<digit>/<index>.png``."""
    from PIL import Image

    digits = load_digits()
    for index, (pixels, digit) in enumerate(zip(digits.images, digits.target, strict=True)):
        (folder / str(digit)).mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(np.round(pixels * 255 / 16).astype(np.uint8), mode="L")
        image.save(folder / str(digit) / f"{index:04d}.png", optimize=True)


def main(out: str) -> None:
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    for name, frame in (("iris", iris()), ("diabetes", diabetes()), ("customers", customers())):
        frame.to_csv(target / f"{name}.csv", index=False)
    for index in range(1, DRIFT_MONTH):
        write_month(index, target / "sensors")
    write_labeling(target / "labeling")
    write_digits(target / "digits")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--month":
        print(
            write_month(int(sys.argv[2]), Path(sys.argv[3] if len(sys.argv) > 3 else "examples/data/sensors"))
        )
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "data"))
