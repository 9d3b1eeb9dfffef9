"""The decay sequences behind the entropy coder's LAPLACE and SKEW tables (docs/FORMAT.md):

    g[0] = 2**32;  g[d+1] = (g[d] * r) >> 16      (r = 65536: g[d] = 2**32 for every d)

The recurrence is serial and exact (floor at every step, so no closed form in floats), and a
slowly decaying table (r near 65536) needs tens of thousands of terms: in Python that loop was
most of an I-frame's entropy decode. So the terms come from the C library of the kernels
(gsvc_cli.render.capi, which the decoder loads to render anyway) when it can be built, else from
`reference_terms`; the two are the same integers (tests/test_decay.py).

A sequence does not depend on the length asked for (g[0..n) is a prefix of g[0..m) for n < m), so
one array per r serves every table and every frame: the terms up to the first zero (which repeats
for ever after) or up to MAX_TERMS, the most any table of at most 65536 symbols reads.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

ONE = 1 << 16
"""r = ONE is a decay of 1: a flat sequence."""
START = 1 << 32
MAX_TERMS = 1 << 16
"""Distances in a table of A <= 65536 symbols are < 65536."""

log = logging.getLogger("gsvc_cli.codec")
_native_failed: list[str] = []


def reference_terms(r: int, length: int) -> list[int]:
    """g[0..length) by the definition, one Python integer at a time (the fallback and the test's
    yardstick)."""
    if r >= ONE:
        return [START] * length
    out = []
    g = START
    while g and len(out) < length:
        out.append(g)
        g = (g * r) >> 16
    return out + [0] * (length - len(out))


def _all_terms(r: int) -> np.ndarray:
    """g[0..MAX_TERMS) for r < ONE: from the C library, else (it cannot be built; logged once) by
    `reference_terms`."""
    from gsvc_cli.render.capi import decay_sequence
    from gsvc_cli.render.capi_build import KernelBuildError

    if not _native_failed:
        try:
            return decay_sequence(r, MAX_TERMS)
        except KernelBuildError as error:
            _native_failed.append(str(error))
            log.warning("%s; computing entropy tables in Python instead", error)
    return np.array(reference_terms(r, MAX_TERMS), dtype=np.int64)


@functools.lru_cache(maxsize=512)
def _terms(r: int) -> np.ndarray:
    """Read-only g[0..n): for r < ONE up to the first zero included (or all MAX_TERMS terms), for
    r = ONE the single term 2**32. Either way every later term equals the last one."""
    if not 0 <= r <= ONE:
        raise ValueError(f"decay r {r} outside [0, {ONE}]")
    if r == ONE:
        terms = np.array([START], dtype=np.int64)
    else:
        terms = _all_terms(r)
        terms = terms[:min(int(np.count_nonzero(terms)) + 1, MAX_TERMS)].copy()  # zeros come last
    terms.flags.writeable = False
    return terms


def decay_terms(r: int, length: int) -> np.ndarray:
    """g[0..length) as int64, length <= MAX_TERMS (read-only: a view of the cached array when it is
    long enough)."""
    if not 0 <= length <= MAX_TERMS:
        raise ValueError(f"decay sequence length {length} outside [0, {MAX_TERMS}]")
    terms = _terms(r)
    if length <= len(terms):
        return terms[:length]
    out = np.full(length, terms[-1], dtype=np.int64)
    out[:len(terms)] = terms
    return out
