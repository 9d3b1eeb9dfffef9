"""Rate control (gsvc_cli/codec/encoder/rate_control.py): revert_rows, the step that brings an
over-budget P-frame back under its budget by putting changed survivors back to their previous integers.

RateController and search_step_scale are being replaced, so they are tested through the encoder
(tests/test_codec.py) rather than here.
"""

from __future__ import annotations

import pytest
import torch

from gsvc_cli.codec.bitstream.frame_coding import decode_frame, encode_inter_frame
from gsvc_cli.codec.encoder.inter_fit import fit_inter, warm_start
from gsvc_cli.codec.encoder.rate_control import revert_rows


@pytest.fixture(scope="module")
def p_frame(pan_reference):
    """A real P-frame result: frame 1 of the pan fitted from frame 0 (conftest.pan_reference)."""
    images, q, steps, weights = pan_reference
    warm = warm_start(images[1], q, steps, weights)
    result = fit_inter(images[1], warm, steps, n_add=10, n_prune=6, active_fraction=0.3, iterations=10,
                       channel_weights=weights, seed=1)
    return q, result


def test_revert_rows_puts_exactly_those_rows_back(p_frame):
    _, result = p_frame
    n_kept = len(result.kept)
    changed = torch.nonzero(result.active[:n_kept]).flatten()
    rows = changed[::2]
    before = [t.clone() for t in (result.q.means, result.q.chol, result.q.colors)]
    out = revert_rows(result.q, result.base, result.kept, rows)
    others = torch.ones(len(result.q), dtype=torch.bool)
    others[rows] = False
    for new, old, base in ((out.means, before[0], result.base.means), (out.chol, before[1], result.base.chol),
                           (out.colors, before[2], result.base.colors)):
        assert torch.equal(new[rows], base[result.kept[rows]])  # back to the base integers...
        assert torch.equal(new[others], old[others])  # ...and nothing else touched
        assert new.dtype == torch.int32
    # The input is not modified in place (the bisection in revert_to_budget reverts from it again).
    assert all(torch.equal(a, b) for a, b in zip(before, (result.q.means, result.q.chol, result.q.colors),
                                                strict=True))
    # The fit really changed some of those rows, so the check above is not vacuous.
    assert not out.equal(result.q)


def test_revert_rows_with_no_rows_is_the_identity(p_frame):
    _, result = p_frame
    out = revert_rows(result.q, result.base, result.kept, torch.zeros(0, dtype=torch.long))
    assert out.equal(result.q)


def test_reverting_every_changed_survivor_saves_bits_and_decodes(p_frame):
    """What revert_to_budget relies on: reverted rows cost less, and the payload still decodes to them."""
    prev, result = p_frame
    n_kept = len(result.kept)
    changed = torch.nonzero(result.active[:n_kept]).flatten()
    reverted = revert_rows(result.q, result.base, result.kept, changed)
    full = encode_inter_frame(result.q, prev, result.kept)
    cheap = encode_inter_frame(reverted, prev, result.kept)
    assert 8 * len(cheap.payload) < 0.7 * 8 * len(full.payload)  # about 40 % of the bits here
    decoded = decode_frame(cheap.payload, prev)
    assert decoded.splats.equal(reverted.select(cheap.order))
    # Every survivor now carries its base integers: only the new splats differ from the warm start.
    survivors = decoded.splats.select(torch.arange(n_kept))
    assert survivors.equal(result.base.select(result.kept))
