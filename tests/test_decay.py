"""The decay sequences of the LAPLACE/SKEW tables (gsvc_cli/codec/bitstream/decay.py) are the
integers FORMAT.md defines, from the C library and from the Python fallback alike, and the tables
built from them equal those of the pure-Python construction they replaced: any difference would
change every file's bytes."""

from __future__ import annotations

import numpy as np
import pytest

from gsvc_cli.codec.bitstream import decay
from gsvc_cli.codec.bitstream.decay import MAX_TERMS, ONE, decay_terms, reference_terms
from gsvc_cli.codec.bitstream.entropy import frequency_table, laplace_freqs, skew_freqs
from gsvc_cli.render import capi

EDGE_R = (0, 1, 2, 3, 255, 256, 32767, 32768, 60000, 65000, 65534, 65535, ONE)
EDGE_LENGTHS = (0, 1, 2, 3, 17, 1000, MAX_TERMS - 1, MAX_TERMS)


def _old_geometric_weights(r: int, length: int) -> np.ndarray:
    """entropy._geometric_weights before decay.py (6f2898d), the yardstick of the tables."""
    out = np.zeros(length, dtype=np.int64)
    if r >= ONE:
        out[:] = 1 << 32
        return out
    values = []
    g = 1 << 32
    while g and len(values) < length:
        values.append(g)
        g = (g * r) >> 16
    out[:len(values)] = values
    return out


def _old_laplace_freqs(size: int, centre: int, r: int) -> np.ndarray:
    g = _old_geometric_weights(r, max(centre + 1, size - centre))
    k = np.arange(size)
    return frequency_table(g[np.abs(k - centre)])


def _old_skew_freqs(size: int, centre: int, r_left: int, r_right: int) -> np.ndarray:
    k = np.arange(size)
    left = _old_geometric_weights(r_left, centre + 1)
    right = _old_geometric_weights(r_right, size - centre)
    w = np.where(k < centre, left[np.maximum(centre - k, 0)], right[np.maximum(k - centre, 0)])
    return frequency_table(w)


@pytest.fixture(params=["native", "python"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once with the C library and once with the fallback (as if it could not be built)."""
    if request.param == "python":
        monkeypatch.setattr(decay, "_native_failed", ["no C library in this test"])
    decay._terms.cache_clear()
    yield request.param
    decay._terms.cache_clear()


def test_edge_sequences_equal_the_definition(backend: str) -> None:
    for r in EDGE_R:
        for length in EDGE_LENGTHS:
            assert decay_terms(r, length).tolist() == reference_terms(r, length), (backend, r, length)


def test_random_sequences_equal_the_definition(backend: str) -> None:
    rng = np.random.default_rng(10)
    slow = rng.integers(65000, ONE + 1, 40)  # the long sequences, where a slip would hide longest
    for r in [*rng.integers(0, ONE + 1, 200), *slow]:
        length = int(rng.integers(0, MAX_TERMS + 1))
        assert decay_terms(int(r), length).tolist() == reference_terms(int(r), length), (backend, r, length)


def _recurrence(rs: np.ndarray) -> np.ndarray:
    """[len(rs), n]: g[0] = 2**32, g[d+1] = (g[d] * r) >> 16 stepped in numpy over all r at once (the
    same integer operations as the definition, independent of the C code), then one more term: n
    is one past the first term that is zero for every r, or MAX_TERMS."""
    rows = [np.full(len(rs), 1 << 32, dtype=np.int64)]
    while rows[-1].any() and len(rows) < MAX_TERMS:
        rows.append((rows[-1] * rs) >> 16)
    return np.stack(rows, axis=1)


def test_every_r_equals_the_vectorised_recurrence() -> None:
    """All 65537 decays, every term a table can read (past an all-zero term every later one is
    zero by the definition)."""
    for start in range(0, ONE + 1, 256):  # a block of the slowest decays: 2 x 128 MiB
        rs = np.arange(start, min(start + 256, ONE + 1), dtype=np.int64)
        expected = _recurrence(rs)
        table = np.stack([capi.decay_sequence(int(r), expected.shape[1]) for r in rs])
        assert np.array_equal(table, expected), start


def test_tables_equal_the_old_construction(backend: str) -> None:
    rng = np.random.default_rng(11)
    cases = [(2, 0, 0, 0), (2, 1, ONE, 0), (3, 1, 1, 65535), (65536, 0, 65535, 65535),
             (65536, 65535, 65535, 1), (65536, 32768, 65534, ONE), (40000, 39999, 65533, 65533)]
    for _ in range(150):
        size = int(rng.choice([2, 3, 5, 64, 4096, int(rng.integers(2, 65537)), 65536]))
        r_left, r_right = (int(rng.choice([*EDGE_R, int(rng.integers(0, ONE + 1))])) for _ in range(2))
        cases.append((size, int(rng.integers(0, size)), r_left, r_right))
    for size, centre, r_left, r_right in cases:
        new = skew_freqs(size, centre, r_left, r_right)
        assert np.array_equal(new, _old_skew_freqs(size, centre, r_left, r_right)), (size, centre, r_left)
        assert np.array_equal(laplace_freqs(size, centre, r_left), _old_laplace_freqs(size, centre, r_left))


def test_cached_terms_are_read_only_and_bounded() -> None:
    assert not decay_terms(65535, 100).flags.writeable
    assert len(decay._terms(0)) == 2 and len(decay._terms(ONE)) == 1  # to the first zero; flat
    assert len(decay._terms(65535)) == MAX_TERMS
    with pytest.raises(ValueError):
        decay_terms(ONE + 1, 3)
    with pytest.raises(ValueError):
        decay_terms(5, MAX_TERMS + 1)
