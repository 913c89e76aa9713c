"""Drift check speed: 100,000 current rows x 50 features, beside the least any check must do.

In process, no services: `check_dataset` on synthetic data, numeric features
N(0, 1) (half of them shifted by 0.05 sigma in the current window) and
categorical ones of ten string values (half with one value's share moved). Mixes:
all numeric, all categorical, half and half; each with a reference of 1,000
rows (the defaults pick KS and chi-squared) and of 10,000 (normed Wasserstein
and Jensen-Shannon); PSI is computed for every feature either way.

The floor, timed on the same data in the same run: one ``scipy.stats.ks_2samp``
per numeric feature (it sorts both samples, which every numeric statistic
needs) and one pandas ``value_counts`` of each sample per categorical feature.
Rounds alternate check and floor; medians are compared.

    .venv/bin/python bench/drift_check.py [--rounds 3] [--rows 100000] [--features 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
from _harness import machine
from scipy import stats

from aia_workers.drift.check import check_dataset
from aia_workers.drift.contracts.checks import FeatureKind

GOAL_SECONDS = 10.0
SEED = 0
CATEGORIES = np.array([f"value-{i}" for i in range(10)])
MIXES = {"numeric": 1.0, "categorical": 0.0, "mixed": 0.5}
REFERENCE_ROWS = (1_000, 10_000)

Columns = dict[str, np.ndarray]


def _data(
    rows: int, reference_rows: int, features: int, numeric_share: float
) -> tuple[Columns, Columns, dict[str, FeatureKind]]:
    rng = np.random.default_rng(SEED)
    numeric = round(features * numeric_share)
    reference: Columns = {}
    current: Columns = {}
    kinds: dict[str, FeatureKind] = {}
    for i in range(features):
        name = f"f{i}"
        shifted = i % 2 == 1
        if i < numeric:
            kinds[name] = FeatureKind.NUMERIC
            reference[name] = rng.normal(0.0, 1.0, reference_rows)
            current[name] = rng.normal(0.05 if shifted else 0.0, 1.0, rows)
        else:
            kinds[name] = FeatureKind.CATEGORICAL
            shares = np.full(CATEGORIES.size, 1 / CATEGORIES.size)
            reference[name] = rng.choice(CATEGORIES, reference_rows, p=shares)
            if shifted:
                shares = np.array([0.15, *np.full(CATEGORIES.size - 1, 0.85 / 9)])
            current[name] = rng.choice(CATEGORIES, rows, p=shares)
    return reference, current, kinds


def _floor(reference: Columns, current: Columns, kinds: dict[str, FeatureKind]) -> None:
    for name, kind in kinds.items():
        if kind is FeatureKind.NUMERIC:
            stats.ks_2samp(reference[name], current[name])
        else:
            pd.Series(reference[name]).value_counts()
            pd.Series(current[name]).value_counts()


def _seconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=50)
    args = parser.parse_args()
    print(f"{machine()}; {args.rows:,} current rows x {args.features} features")

    slowest = 0.0
    for mix, numeric_share in MIXES.items():
        for reference_rows in REFERENCE_ROWS:
            reference, current, kinds = _data(
                args.rows, reference_rows, args.features, numeric_share
            )
            checks: list[float] = []
            floors: list[float] = []
            for _ in range(args.rounds):
                checks.append(_seconds(partial(check_dataset, reference, current, kinds)))
                floors.append(_seconds(partial(_floor, reference, current, kinds)))
            report = check_dataset(reference, current, kinds)
            tests = sorted({feature.test.value for feature in report.features})
            check, floor = statistics.median(checks), statistics.median(floors)
            slowest = max(slowest, check)
            print(
                f"  {mix:<11} reference {reference_rows:>6,} ({', '.join(tests)} + psi): "
                f"check {check:.2f} s, floor {floor:.2f} s ({check / floor:.1f} x); "
                f"{report.drifted_count} of {len(report.features)} features drifted",
                flush=True,
            )
    met = slowest < GOAL_SECONDS
    print(
        f"goal: {args.rows:,} x {args.features} checked in < {GOAL_SECONDS:.0f} s "
        f"(slowest mix {slowest:.2f} s): {'met' if met else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
