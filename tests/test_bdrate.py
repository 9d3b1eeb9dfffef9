"""The Bjøntegaard delta (bench/bdrate.py) on synthetic RD curves with known answers."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bdrate.py"
_spec = importlib.util.spec_from_file_location("gsvc_bench_bdrate", _PATH)
assert _spec is not None and _spec.loader is not None
bdrate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bdrate)

# A realistic-looking anchor: PSNR concave in log rate (4.5 dB per doubling, flattening).
RATES = [0.05, 0.1, 0.2, 0.4, 0.8]
ANCHOR = [(r, 30.0 + 4.5 * math.log2(r / 0.05) - 0.2 * math.log2(r / 0.05) ** 2) for r in RATES]


def scaled(curve, factor):
    return [(r * factor, q) for r, q in curve]


def test_identical_curves_give_zero():
    assert bdrate.bd_rate(ANCHOR, ANCHOR) == pytest.approx(0.0, abs=1e-9)
    assert bdrate.bd_quality(ANCHOR, ANCHOR) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("factor, expected", [(0.5, -50.0), (2.0, 100.0), (1.2, 20.0), (0.75, -25.0)])
def test_same_curve_at_scaled_rate(factor, expected):
    assert bdrate.bd_rate(ANCHOR, scaled(ANCHOR, factor)) == pytest.approx(expected, abs=1e-6)


def test_antisymmetric():
    a = bdrate.bd_rate(ANCHOR, scaled(ANCHOR, 0.5))
    b = bdrate.bd_rate(scaled(ANCHOR, 0.5), ANCHOR)
    assert (1 + a / 100) * (1 + b / 100) == pytest.approx(1.0, abs=1e-9)


def test_quality_offset_gives_bd_psnr():
    better = [(r, q + 1.5) for r, q in ANCHOR]
    assert bdrate.bd_quality(ANCHOR, better) == pytest.approx(1.5, abs=1e-9)
    # Same curve shifted: 1.5 dB better is some rate saving, so the BD-rate is negative.
    assert bdrate.bd_rate(ANCHOR, better) < 0


def test_linear_in_log_rate_known_answer():
    # q = 10 log10(r) + 40 (i.e. 10 dB per decade); test at +3 dB -> rate x 10^-0.3 -> -49.88%.
    anchor = [(r, 10 * math.log10(r) + 40) for r in RATES]
    test = [(r, 10 * math.log10(r) + 43) for r in RATES]
    assert bdrate.bd_rate(anchor, test) == pytest.approx((10 ** -0.3 - 1) * 100, abs=1e-6)
    assert bdrate.bd_quality(anchor, test) == pytest.approx(3.0, abs=1e-9)


def test_only_the_overlap_counts():
    # Test covers a narrower quality range; in that range it is exactly half the rate.
    narrow = scaled(ANCHOR, 0.5)[1:4]
    assert bdrate.bd_rate(ANCHOR, narrow) == pytest.approx(-50.0, abs=0.5)
    lo, hi = bdrate.overlap(ANCHOR, narrow)
    assert lo == pytest.approx(narrow[0][1]) and hi == pytest.approx(narrow[-1][1])


def test_order_and_fewer_points():
    shuffled = [ANCHOR[i] for i in (3, 0, 4, 1, 2)]
    assert bdrate.bd_rate(shuffled, scaled(ANCHOR, 0.5)) == pytest.approx(-50.0, abs=1e-6)
    two = [(0.1, 30.0), (0.4, 36.0)]
    assert bdrate.bd_rate(two, scaled(two, 0.5)) == pytest.approx(-50.0, abs=1e-9)


def test_no_overlap_or_too_few_points_is_none():
    low = [(0.1, 25.0), (0.2, 27.0), (0.4, 29.0)]
    high = [(0.1, 35.0), (0.2, 37.0), (0.4, 39.0)]
    assert bdrate.bd_rate(low, high) is None
    assert bdrate.overlap(low, high) is None
    assert bdrate.bd_rate(low, [(0.1, 26.0)]) is None
    assert bdrate.bd_rate(low, [(0.1, 26.0), (float("nan"), 28.0), (0.0, 27.0)]) is None
    # Disjoint rate ranges: no BD-PSNR either.
    assert bdrate.bd_quality([(0.01, 20.0), (0.02, 22.0)], [(1.0, 40.0), (2.0, 42.0)]) is None
