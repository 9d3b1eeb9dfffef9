"""Entropy coding of integer streams with constriction's range coder and integer-only models.

A frame payload codes a sequence of *streams* (arrays of signed integers whose lengths the decoder
can derive). `EntropyWriter.add(symbols)` picks, per stream, the cheapest of a few models, records
the model's integer parameters in a model block and range-codes the symbols; `EntropyReader.read(n)`
does the reverse in the same order. Streams of length 0 write nothing.

Determinism (docs/FORMAT.md, "Entropy coding"): every model is an integer frequency table
f[0..A) with f[k] >= 1 and sum f = 2**24, built from the integers in the model block by integer
arithmetic only. The table is handed to constriction as the float64 weights f[k] - 1, whose sum is
2**24 - A; constriction's fast ("perfect=False") quantisation then reproduces f exactly (its scale
factor is exactly 1.0), so encoder and decoder agree bit for bit on every IEEE-754 machine.

Models (kind byte, then varints):
  CONSTANT   every symbol equals one value (costs no body bits: unchanged splats are free).
  LAPLACE    two-sided geometric weights 2**32 * (r/65536)**|k-c| in fixed point, over [lo, lo+A).
  HISTOGRAM  transmitted counts over [lo, lo+A), used when the alphabet is small enough to pay.
  SKEW       like LAPLACE with separate decays left and right of the peak (skewed streams).
  SPLIT      context modelling: the stream's symbols fall into buckets the decoder can compute
             from what it already decoded (`contexts`); each non-empty bucket has its own model
             (one of the kinds above) and its symbols are coded together, bucket by bucket.
  REPEAT     the model this stream (or this bucket) had in an earlier frame (`ModelMemory`): one
             byte where a description costs 4 to 20; M-frames' short streams paid a third of
             their bits for their models.
  CLASSES    transmitted counts over signed bit-length classes of v - centre (0; +-1; +-2..3;
             +-4..7; ...), the bits below each value's leading one sent as they are: heavy-tailed
             streams (motion-vector residuals mix quarter-pixel polish with jumps of a hundred
             pixels), which one geometric decay fits badly and a histogram of every value cannot
             afford to describe. Format 11.0 on.
  LADDER     LAPLACE without a shift, its decay one byte from a fixed ladder of 256 (format 14.0):
             five bytes where LAPLACE takes eight; a residual splat set's dozen short streams paid
             a third of their bits for their models.
  BINARY     kinds 128-255, the whole description one byte: a two-symbol table over {0, 1} from a
             fixed ladder of 128 (format 14.0). Flags are most of the streams a small M-frame
             splits by context, and a histogram's five or six bytes per bucket cost more than the
             split saved on fields of 1,600 cells.
Large ranges are split: the top bits ((v - lo) >> s) use the model, the low s bits a uniform table.

`StreamStats` gives the exact model-block bits and the ideal code length of each stream, which
`frame_coding` sums per parameter group for the bits-per-splat report.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import constriction
import numpy as np

from gsvc_cli.codec.bitstream.decay import ONE, decay_terms
from gsvc_cli.errors import FormatError, GsvcError

PRECISION = 24
TOTAL = 1 << PRECISION
MAX_ALPHABET = 1 << 16
"""Largest table the models use; wider ranges send their low bits through a uniform table."""
LAPLACE_ONE = ONE
"""Decay r is coded as an integer in [0, LAPLACE_ONE]; theta = r / LAPLACE_ONE."""
MAX_HISTOGRAM_ALPHABET = 4096

KIND_CONSTANT = 0
KIND_LAPLACE = 1
KIND_HISTOGRAM = 2
KIND_SKEW = 3
KIND_SPLIT = 4
KIND_REPEAT = 5
KIND_CLASSES = 6
MAX_CLASS_ALPHABET = 2 * 41 + 1
"""Symbols of a CLASSES model: 0, then two per bit length 1..41 (|v - centre| < 2**41)."""
CLASS_MIN_SPAN = 16
"""Streams whose values span fewer integers are not offered CLASSES (their raw bits buy nothing)."""
KIND_LADDER = 7
LADDER_MANTISSAS = (65536, 62757, 60097, 57549, 55109, 52773, 50535, 48393,
                    46341, 44376, 42495, 40693, 38968, 37316, 35734, 34219)
"""round(65536 * 2^(-j / 16)): a LADDER model's 1 - theta at step k is 2^(-k / 16), in integers."""
KIND_BINARY = 128
BINARY_LEVELS = 128
"""Kinds KIND_BINARY + j, j in [0, BINARY_LEVELS): the BINARY model of table `binary_freqs(j)`."""
MAX_CONTEXTS = 16
"""Most buckets a context-split stream may have (the stream definition fixes the count)."""


# ----------------------------------------------------------------------------------------------
# varints


def zigzag(value: int) -> int:
    """Signed -> unsigned: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    return (value << 1) if value >= 0 else ((-value << 1) - 1)


def unzigzag(value: int) -> int:
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


def put_varint(out: bytearray, value: int) -> None:
    """Unsigned LEB128: 7 bits per byte, least significant first, high bit = more bytes follow."""
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


class ByteReader:
    """Sequential reader of bytes and varints; running off the end raises FormatError."""

    def __init__(self, data: bytes, what: str = "payload") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"{self.what}: truncated (needs {n} bytes at offset {self.pos})")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def u8(self) -> int:
        return self.bytes(1)[0]

    def varint(self) -> int:
        value = 0
        shift = 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise FormatError(f"{self.what}: varint longer than 64 bits at offset {self.pos}")

    def svarint(self) -> int:
        return unzigzag(self.varint())

    def varints(self, n: int) -> np.ndarray:
        """n varints as int64: what n calls of `varint` return (and, on a bad or truncated varint
        or one of more than 5 bytes, what they raise: that case takes their path), without a
        Python call per byte."""
        data = np.frombuffer(self.data, dtype=np.uint8)[self.pos:]
        ends = np.flatnonzero(data < 0x80)[:n]  # the last byte of each varint
        if n <= 0 or len(ends) < n:
            return np.array([self.varint() for _ in range(n)], dtype=np.int64)
        starts = np.concatenate(([0], ends[:-1] + 1))
        lengths = ends - starts + 1
        if int(lengths.max()) > 5:
            return np.array([self.varint() for _ in range(n)], dtype=np.int64)
        values = np.zeros(n, dtype=np.int64)
        for k in range(int(lengths.max())):
            has = lengths > k
            values[has] |= (data[starts[has] + k].astype(np.int64) & 0x7F) << (7 * k)
        self.pos += int(ends[-1]) + 1
        return values

    def remaining(self) -> bytes:
        return self.bytes(len(self.data) - self.pos)


# ----------------------------------------------------------------------------------------------
# integer frequency tables


def frequency_table(weights: np.ndarray) -> np.ndarray:
    """Integer weights w[0..A) (>= 0, sum > 0, A >= 2) -> frequencies f >= 1 summing to 2**24.

    f[k] = 1 + floor(w[k] * (2**24 - A) / W) with W = sum w; what is left over goes to the first
    k with the largest w. Integer arithmetic only (FORMAT.md defines exactly this).
    """
    w = np.asarray(weights, dtype=np.int64)
    size = len(w)
    if size < 2 or size > MAX_ALPHABET:
        raise GsvcError(f"frequency table size {size} outside [2, {MAX_ALPHABET}]")
    total_w = int(w.sum())
    if total_w <= 0 or (w < 0).any():
        raise FormatError("entropy model has no positive weight")
    free = TOTAL - size
    # With w < 2**38 (checked here) and free < 2**24, w * free < 2**62 fits in int64.
    if int(w.max()) >= (1 << 38):
        raise GsvcError("entropy model weight too large")
    freqs = 1 + (w * free) // total_w
    freqs[int(np.argmax(w))] += TOTAL - int(freqs.sum())
    return freqs


def laplace_freqs(size: int, centre: int, r: int) -> np.ndarray:
    """Two-sided geometric table over [0, size) peaked at `centre` with decay r / 65536."""
    return skew_freqs(size, centre, r, r)


def skew_freqs(size: int, centre: int, r_left: int, r_right: int) -> np.ndarray:
    """Table over [0, size) peaked at `centre`: decay r_left / 65536 below it, r_right above.

    Weights g_left[centre - k] for k < centre, then g_right[k - centre]: slices of the cached decay
    sequences (decay.py), reversed on the left.
    """
    left = decay_terms(r_left, centre + 1)[:0:-1]
    right = decay_terms(r_right, size - centre)
    return frequency_table(np.concatenate((left, right)))


def ladder_decay(step: int) -> int:
    """The decay r (of 65536) of LADDER step `step` in [0, 256): 65536 - (LADDER_MANTISSAS[step %
    16] >> step // 16), i.e. 1 - theta = 2^(-step / 16) in steps of 4.4%."""
    return LAPLACE_ONE - (LADDER_MANTISSAS[step % 16] >> (step // 16))


@functools.lru_cache(maxsize=1)
def _ladder_log_gaps() -> np.ndarray:
    """log2(65536 - r) of every LADDER step (the encoder's nearest step to a decay)."""
    return np.log2(np.array([LAPLACE_ONE - ladder_decay(k) for k in range(256)], dtype=np.float64))


def ladder_step(r: int) -> int:
    """The LADDER step whose decay is nearest `r` in log(1 - theta)."""
    return int(np.argmin(np.abs(_ladder_log_gaps() - math.log2(max(LAPLACE_ONE - r, 1)))))


def binary_freqs(level: int) -> np.ndarray:
    """The table of BINARY model `level` in [0, 128): the rarer symbol (1 below level 64, else 0)
    has f = (m + 1)^2 * 2^11 with m = level below 64, else 127 - level, so P runs from 2^-13 to 1/2
    in steps that are finest where the rarer symbol is rare."""
    return _binary_table()[level]


@functools.lru_cache(maxsize=1)
def _binary_table() -> np.ndarray:
    """[BINARY_LEVELS, 2] int64: every BINARY model's table."""
    level = np.arange(BINARY_LEVELS, dtype=np.int64)
    rare = (np.where(level < 64, level, 127 - level) + 1) ** 2 << 11
    ones = np.where(level < 64, rare, TOTAL - rare)
    table = np.stack((TOTAL - ones, ones), axis=1)
    table.setflags(write=False)
    return table


def _binary_model(values: np.ndarray) -> _Model:
    """The BINARY model of least ideal bits for `values` (every one 0 or 1)."""
    ones = int(np.count_nonzero(values))
    table = _binary_table()
    bits = -((len(values) - ones) * np.log2(table[:, 0] / TOTAL) + ones * np.log2(table[:, 1] / TOTAL))
    level = int(np.argmin(bits))
    return _Model(bytes([KIND_BINARY + level]), table[level], 0, 0, float(bits[level]))


def _categorical(freqs: np.ndarray) -> constriction.stream.model.Categorical:
    """A constriction model whose fixed-point table is exactly `freqs` (see module docstring)."""
    return constriction.stream.model.Categorical((freqs - 1).astype(np.float64), perfect=False)


def _ideal_bits(freqs: np.ndarray, symbols: np.ndarray) -> float:
    if len(symbols) == 0:
        return 0.0
    return float(-np.log2(freqs[symbols] / TOTAL).sum())


# ----------------------------------------------------------------------------------------------
# model choice


@dataclass
class _Model:
    """One stream's model: the header bytes, the table for the coded part, and the shift."""

    header: bytes
    freqs: np.ndarray | None  # None for CONSTANT
    lo: int  # CLASSES: the centre
    shift: int
    ideal_bits: float
    classes: bool = False  # a CLASSES model: freqs over class symbols (`class_symbols`)


ModelChoices = dict[bytes, "_Model"]
"""_choose_model's answers by the stream's int64 bytes (EntropyWriter's `choices`): an encoder that
codes one M-frame field beside several residual sets chooses the field streams' models once."""

ModelMemory = dict[str, "_Model"]
"""The model each stream key (a stream's name; "name#b" for bucket b of a SPLIT) was last coded
with, in the frames a payload may refer back to (FORMAT.md, "Model memory")."""


def _repeat_bits(model: _Model | None, values: np.ndarray) -> float | None:
    """Body bits of `values` under an earlier `model`, None when it cannot code them all."""
    if model is None:
        return None
    if model.freqs is None:
        return 0.0 if bool((values == model.lo).all()) else None
    if model.classes:
        symbols, raw = class_symbols(values - model.lo)
        if int(symbols.max()) >= len(model.freqs):
            return None
        return _ideal_bits(model.freqs, symbols) + raw
    offsets = values - model.lo
    if int(offsets.min()) < 0:
        return None
    high = offsets >> model.shift
    if int(high.max()) >= len(model.freqs):
        return None
    return _ideal_bits(model.freqs, high) + _low_bits_cost(model.shift, len(values))


def _shift_for(span: int) -> int:
    shift = 0
    while (span >> shift) + 1 > MAX_ALPHABET:
        shift += 1
    return shift


def _low_bits_cost(shift: int, count: int) -> float:
    return float(shift * count)


_DECAY_FACTORS = (0.6, 1.0, 1.6)
"""Multipliers of (1 - theta) tried around each moment estimate of a decay (encoder's choice)."""


def _decay(theta: float, factor: float) -> int:
    """r = round((1 - (1 - theta) * factor) * 65536), clamped to [0, 65536]."""
    one_minus = min(max((1.0 - theta) * factor, 0.0), 1.0)
    return min(max(int(round((1.0 - one_minus) * LAPLACE_ONE)), 0), LAPLACE_ONE)


def _centres(symbols: np.ndarray, size: int) -> list[int]:
    """Peak positions worth trying: the median and the most frequent symbol."""
    median = int(np.median(symbols))
    mode = int(np.argmax(np.bincount(symbols))) if size <= MAX_ALPHABET else median
    return list(dict.fromkeys(min(max(c, 0), size - 1) for c in (median, mode)))


def _laplace_candidates(symbols: np.ndarray, size: int) -> list[tuple[int, int]]:
    """(centre, r) pairs worth trying: decays around the moment estimate from the mean |v - c|
    about the median (trying the mode and more decays too gained < 0.1 % on real frames)."""
    out = []
    for centre in _centres(symbols, size)[:1]:
        mad = float(np.abs(symbols - centre).mean())
        theta = 0.0 if mad <= 0 else (math.sqrt(1.0 + mad * mad) - 1.0) / mad
        out += [(centre, _decay(theta, f)) for f in _DECAY_FACTORS]
    return sorted(set(out))


def _skew_candidates(symbols: np.ndarray, size: int) -> list[tuple[int, int, int]]:
    """(centre, r_left, r_right): one-sided geometric moment estimates on each side of c."""
    out = []
    for centre in _centres(symbols, size):
        above = symbols[symbols >= centre] - centre
        below = centre - symbols[symbols < centre]
        m_right = float(above.mean()) if len(above) else 0.0
        theta_right = m_right / (1.0 + m_right)  # geometric on d >= 0: mean = theta / (1 - theta)
        m_left = float(below.mean()) if len(below) else 1.0
        theta_left = 1.0 - 1.0 / m_left  # on d >= 1: mean = 1 / (1 - theta)
        out.append((centre, _decay(theta_left, 1.0), _decay(theta_right, 1.0)))
    return sorted(set(out))


def _bit_lengths(values: np.ndarray) -> np.ndarray:
    """Bit length of each non-negative integer (< 2**53), like int.bit_length(): frexp's exponent,
    exact for every integer a float64 holds exactly."""
    return np.frexp(values.astype(np.float64))[1].astype(np.int64)


def _histogram_weights(symbols: np.ndarray, size: int, qmax: int) -> np.ndarray:
    counts = np.bincount(symbols, minlength=size).astype(np.int64)
    q = (counts * qmax + counts.max() - 1) // counts.max()  # ceil: a seen symbol keeps q >= 1
    return q


def _choose_model(values: np.ndarray) -> _Model:
    """The cheapest model for `values` (int64, non-empty) by exact header + ideal body bits."""
    lo = int(values.min())
    hi = int(values.max())
    if lo == hi:  # free symbols (a BINARY model would cost a few bits less on short streams)
        head = bytearray([KIND_CONSTANT])
        put_varint(head, zigzag(lo))
        return _Model(bytes(head), None, lo, 0, 0.0)
    binary = _binary_model(values) if lo == 0 and hi == 1 else None
    shift = _shift_for(hi - lo)
    symbols = (values - lo) >> shift
    size = int(symbols.max()) + 1
    low_cost = _low_bits_cost(shift, len(values))
    best: _Model | None = None
    if size == 1:  # everything in the top bits is equal: a two-entry table still codes it
        size = 2
    for centre, r in _laplace_candidates(symbols, size):
        if shift:
            head = _model_head(KIND_LAPLACE, lo, size, shift)
            put_varint(head, centre)
            put_varint(head, r)
        else:  # the ladder's nearest decay, in three bytes fewer
            step = ladder_step(r)
            r = ladder_decay(step)
            head = _model_head(KIND_LADDER, lo, size)
            put_varint(head, centre)
            head.append(step)
        freqs = laplace_freqs(size, centre, r)
        bits = _ideal_bits(freqs, symbols) + low_cost
        if best is None or 8 * len(head) + bits < 8 * len(best.header) + best.ideal_bits:
            best = _Model(bytes(head), freqs, lo, shift, bits)
    for centre, r_left, r_right in _skew_candidates(symbols, size):
        freqs = skew_freqs(size, centre, r_left, r_right)
        head = _model_head(KIND_SKEW, lo, size, shift)
        put_varint(head, centre)
        put_varint(head, r_left)
        put_varint(head, r_right)
        bits = _ideal_bits(freqs, symbols) + low_cost
        assert best is not None
        if 8 * len(head) + bits < 8 * len(best.header) + best.ideal_bits:
            best = _Model(bytes(head), freqs, lo, shift, bits)
    if size <= MAX_HISTOGRAM_ALPHABET and size < 4 * len(values):
        head = _model_head(KIND_HISTOGRAM, lo, size, shift)
        assert best is not None
        best = _with_histogram(best, head, symbols, size, low_cost, lo, shift)
    assert best is not None
    if hi - lo >= CLASS_MIN_SPAN:
        best = _classes_model(values, best)
    if binary is not None and 8 + binary.ideal_bits < 8 * len(best.header) + best.ideal_bits:
        best = binary
    return best


def _model_head(kind: int, lo: int, size: int, shift: int | None = None) -> bytearray:
    """A model description's first fields: the kind, lo, the alphabet and (but for LADDER) the shift."""
    head = bytearray([kind])
    put_varint(head, zigzag(lo))
    put_varint(head, size)
    if shift is not None:
        head.append(shift)
    return head


def _with_histogram(best: _Model, head: bytearray, symbols: np.ndarray, size: int, extra_bits: float,
                    lo: int, shift: int, classes: bool = False) -> _Model:
    """`best`, or the model of header `head` plus transmitted weights of `symbols` (at two
    precisions) when its exact bits, with `extra_bits` for what the symbols leave out, are fewer."""
    for qmax in (127, 16383):
        weights = _histogram_weights(symbols, size, qmax)
        # varint bytes of every weight, counted without writing them (the header is built only
        # for the winner: this is the encoder's hot loop)
        weight_bytes = int(np.maximum(1, (_bit_lengths(weights) + 6) // 7).sum())
        best_bits = 8 * len(best.header) + best.ideal_bits
        if 8 * (len(head) + weight_bytes) + extra_bits >= best_bits:
            continue
        freqs = frequency_table(weights)
        bits = _ideal_bits(freqs, symbols) + extra_bits
        if 8 * (len(head) + weight_bytes) + bits < best_bits:
            full = bytearray(head)
            for w in weights.tolist():
                put_varint(full, w)
            best = _Model(bytes(full), freqs, lo, shift, bits, classes)
    return best


def class_symbols(offsets: np.ndarray) -> tuple[np.ndarray, int]:
    """CLASSES symbols of int64 offsets (|v| < 2**41): 0 for 0, 2c - 1 for +v and 2c for -v where c
    is the bit length of |v|; and the count of raw bits they carry (c - 1 each)."""
    magnitude = np.abs(offsets)
    length = np.frexp(magnitude.astype(np.float64))[1].astype(np.int64)  # bit length, exact below 2**53
    symbols = np.where(offsets == 0, 0, 2 * length - 1 + (offsets < 0))
    return symbols, int(np.maximum(length - 1, 0).sum())


def _classes_model(values: np.ndarray, best: _Model) -> _Model:
    """`best`, or a CLASSES model about the median when its exact header and body bits are fewer."""
    centre = int(np.median(values))
    symbols, raw = class_symbols(values - centre)
    size = max(2, int(symbols.max()) + 1)
    head = bytearray([KIND_CLASSES])
    put_varint(head, zigzag(centre))
    put_varint(head, size)
    return _with_histogram(best, head, symbols, size, raw, centre, 0, classes=True)


def _read_model(reader: ByteReader) -> _Model:
    """Parse one model description from the model block (inverse of `_choose_model`'s header)."""
    kind = reader.u8()
    if kind >= KIND_BINARY:
        return _Model(b"", binary_freqs(kind - KIND_BINARY), 0, 0, 0.0)
    lo = reader.svarint()
    if kind == KIND_CONSTANT:
        return _Model(b"", None, lo, 0, 0.0)
    if kind == KIND_CLASSES:
        size = reader.varint()
        if not 2 <= size <= MAX_CLASS_ALPHABET:
            raise FormatError(f"{reader.what}: bad classes model (alphabet {size})")
        weights = reader.varints(size)
        if int(weights.max(initial=0)) >= (1 << 38) or int(weights.sum()) <= 0:
            raise FormatError(f"{reader.what}: bad classes model")
        return _Model(b"", frequency_table(weights), lo, 0, 0.0, True)
    if kind == KIND_LADDER:
        size = reader.varint()
        centre = reader.varint()
        step = reader.u8()
        if not 2 <= size <= MAX_ALPHABET or centre >= size:
            raise FormatError(f"{reader.what}: bad ladder model (alphabet {size}, centre {centre})")
        return _Model(b"", laplace_freqs(size, centre, ladder_decay(step)), lo, 0, 0.0)
    if kind not in (KIND_LAPLACE, KIND_HISTOGRAM, KIND_SKEW):
        raise FormatError(f"{reader.what}: unknown entropy model kind {kind}")
    size = reader.varint()
    shift = reader.u8()
    if not 2 <= size <= MAX_ALPHABET or shift > 32:
        raise FormatError(f"{reader.what}: bad entropy model (alphabet {size}, shift {shift})")
    if kind == KIND_LAPLACE:
        centre = reader.varint()
        r = reader.varint()
        if centre >= size or r > LAPLACE_ONE:
            raise FormatError(f"{reader.what}: bad Laplace model (centre {centre}, r {r})")
        return _Model(b"", laplace_freqs(size, centre, r), lo, shift, 0.0)
    if kind == KIND_SKEW:
        centre = reader.varint()
        r_left = reader.varint()
        r_right = reader.varint()
        if centre >= size or r_left > LAPLACE_ONE or r_right > LAPLACE_ONE:
            raise FormatError(f"{reader.what}: bad skew model (centre {centre}, r {r_left}/{r_right})")
        return _Model(b"", skew_freqs(size, centre, r_left, r_right), lo, shift, 0.0)
    weights = reader.varints(size)
    if int(weights.max(initial=0)) >= (1 << 38) or int(weights.sum()) <= 0:
        raise FormatError(f"{reader.what}: bad histogram model")
    return _Model(b"", frequency_table(weights), lo, shift, 0.0)


# ----------------------------------------------------------------------------------------------
# writer and reader


@dataclass(frozen=True)
class StreamStats:
    """What one stream cost: `model_bits` of model block plus `ideal_bits` of range-coded body."""

    name: str
    count: int
    model_bits: int
    ideal_bits: float


class _ReadStreamStats(StreamStats):
    """The StreamStats of a stream read back, its `ideal_bits` worked out when first asked for (`gsvc
    info` asks; decoding never does, and working it out for every stream was ~12% of an I-frame's
    entropy decode). The same value as computing it at once: the same calls in the same order."""

    def __init__(self, name: str, count: int, model_bits: int,
                 parts: list[tuple[np.ndarray, np.ndarray, int]]) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "count", count)
        object.__setattr__(self, "model_bits", model_bits)
        object.__setattr__(self, "_parts", parts)  # (freqs, modelled symbols, raw bits) per model
        object.__setattr__(self, "_ideal", None)

    @property
    def ideal_bits(self) -> float:  # type: ignore[override]
        if self._ideal is None:
            ideal = 0.0
            for freqs, high, raw in self._parts:
                ideal += _ideal_bits(freqs, high) + raw
            object.__setattr__(self, "_ideal", ideal)
            object.__setattr__(self, "_parts", [])
        return self._ideal


def _check_contexts(contexts: np.ndarray, count: int, n_contexts: int) -> np.ndarray:
    contexts = np.asarray(contexts, dtype=np.int64).reshape(-1)
    if len(contexts) != count or not 2 <= n_contexts <= MAX_CONTEXTS:
        raise GsvcError(f"contexts: {len(contexts)} for {count} symbols, {n_contexts} buckets")
    if count and (contexts.min() < 0 or contexts.max() >= n_contexts):
        raise GsvcError("context bucket out of range")
    return contexts


class EntropyWriter:
    """Collects streams in order; `finish()` returns varint(len(model block)) + model block + body.

    memory: the models earlier frames left (REPEAT refers to them; None: no REPEAT). `used` holds
    the model each stream key was coded with here, what the memory becomes after this payload.
    choices: models chosen before, by their streams' bytes, shared with other writers (ModelChoices).
    """

    def __init__(self, memory: ModelMemory | None = None, choices: ModelChoices | None = None) -> None:
        self._models = bytearray()
        self._encoder = constriction.stream.queue.RangeEncoder()
        self.stats: list[StreamStats] = []
        self._memory = memory
        self._choices = choices
        self.used: ModelMemory = {}

    def _chosen_model(self, values: np.ndarray) -> _Model:
        """_choose_model(values), looked up in and added to `choices` when the writer has them."""
        if self._choices is None:
            return _choose_model(values)
        key = values.tobytes()
        model = self._choices.get(key)
        if model is None:
            model = self._choices[key] = _choose_model(values)
        return model

    def _model_for(self, key: str, values: np.ndarray) -> tuple[_Model, int, float]:
        """(the model, its model-block bits, body bits): a new description or REPEAT, the cheaper."""
        model = self._chosen_model(values)
        head_bits, body_bits = 8 * len(model.header), model.ideal_bits
        earlier = self._memory.get(key) if self._memory is not None else None
        repeat = _repeat_bits(earlier, values)
        if earlier is not None and repeat is not None and 8 + repeat < head_bits + body_bits:
            model = _Model(bytes([KIND_REPEAT]), earlier.freqs, earlier.lo, earlier.shift, repeat,
                           earlier.classes)
            head_bits, body_bits = 8, repeat
        return model, head_bits, body_bits

    def _remember(self, key: str, model: _Model) -> None:
        self.used[key] = _Model(b"", model.freqs, model.lo, model.shift, 0.0, model.classes)

    def _encode(self, model: _Model, values: np.ndarray) -> None:
        self._models += model.header
        if model.freqs is None:
            return
        offsets = values - model.lo
        if model.classes:
            symbols, _ = class_symbols(offsets)
            self._encoder.encode(symbols.astype(np.int32), _categorical(model.freqs))
            magnitude = np.abs(offsets)
            for length in range(2, (int(symbols.max()) + 1) // 2 + 1):  # raw bits, class by class
                members = magnitude[(symbols + 1) // 2 == length]
                self._encode_low_bits(members - (1 << (length - 1)), length - 1)
            return
        self._encoder.encode((offsets >> model.shift).astype(np.int32), _categorical(model.freqs))
        if model.shift:
            self._encode_low_bits(offsets & ((1 << model.shift) - 1), model.shift)

    def _encode_low_bits(self, low: np.ndarray, width: int) -> None:
        """`width`-bit numbers through uniform tables, in chunks of at most 12 bits, least
        significant chunk first (all values' first chunk, then the next, ...)."""
        for part_shift, part in _split_low_bits(low, width):
            self._encoder.encode(part, _categorical(_uniform_freqs(part_shift)))

    def add(self, name: str, values: np.ndarray, contexts: np.ndarray | None = None,
            n_contexts: int = 0) -> StreamStats:
        """Code a 1-D array of integers (|v| < 2**40); the decoder must know its length.

        With `contexts` (a bucket in [0, n_contexts) per value, which the decoder must be able to
        compute before reading this stream), one model per bucket is sent instead (SPLIT) when
        that is cheaper than a single model; the reader must pass the same contexts.
        """
        values = np.asarray(values, dtype=np.int64).reshape(-1)
        if len(values) == 0:
            stats = StreamStats(name, 0, 0, 0.0)
            self.stats.append(stats)
            return stats
        single, single_head, single_ideal = self._model_for(name, values)
        if contexts is not None:
            contexts = _check_contexts(contexts, len(values), n_contexts)
            buckets = [values[contexts == b] for b in range(n_contexts)]
            models = [self._model_for(f"{name}#{b}", v) if len(v) else None for b, v in enumerate(buckets)]
            split_head = 8 + sum(m[1] for m in models if m is not None)
            split_ideal = sum(m[2] for m in models if m is not None)
            if split_head + split_ideal < single_head + single_ideal:
                self._models.append(KIND_SPLIT)
                for b, (chosen, bucket) in enumerate(zip(models, buckets, strict=True)):
                    if chosen is not None:
                        self._encode(chosen[0], bucket)
                        self._remember(f"{name}#{b}", chosen[0])
                stats = StreamStats(name, len(values), split_head, split_ideal)
                self.stats.append(stats)
                return stats
        self._encode(single, values)
        self._remember(name, single)
        stats = StreamStats(name, len(values), single_head, single_ideal)
        self.stats.append(stats)
        return stats

    def finish(self) -> bytes:
        """The coded streams as bytes (body: range coder words as little-endian uint32)."""
        out = bytearray()
        put_varint(out, len(self._models))
        out += self._models
        body = np.asarray(self._encoder.get_compressed(), dtype=np.uint32)
        out += body.astype("<u4").tobytes()
        return bytes(out)


class EntropyReader:
    """Reads streams back in the order they were added; errors become FormatError naming `what`."""

    def __init__(self, data: bytes, what: str = "payload", memory: ModelMemory | None = None) -> None:
        self._memory = memory
        self.used: ModelMemory = {}
        reader = ByteReader(data, what)
        model_len = reader.varint()
        self._models = ByteReader(reader.bytes(model_len), what)
        body = reader.remaining()
        if len(body) % 4:
            raise FormatError(f"{what}: entropy-coded body is not a whole number of 32-bit words")
        words = np.frombuffer(body, dtype="<u4").astype(np.uint32)
        self._decoder = constriction.stream.queue.RangeDecoder(words)
        self.what = what
        self.stats: list[StreamStats] = []

    def _decode(self, model: _Model, count: int,
                parts: list[tuple[np.ndarray, np.ndarray, int]]) -> np.ndarray:
        """`count` values under `model`; appends what their ideal code length needs to `parts`."""
        if model.freqs is None:
            return np.full(count, model.lo, dtype=np.int64)
        if model.classes:
            return self._decode_classes(model, count, parts)
        try:
            high = np.asarray(self._decoder.decode(_categorical(model.freqs), count))  # int32
            values = high.astype(np.int64)
            if model.shift:
                values <<= model.shift
                values |= self._decode_low_bits(count, model.shift)
        except (ValueError, RuntimeError, AssertionError, OverflowError) as exc:
            raise FormatError(f"{self.what}: entropy decoding failed ({exc})") from exc
        parts.append((model.freqs, high, model.shift * count))
        values += model.lo
        return values

    def _decode_low_bits(self, count: int, width: int) -> np.ndarray:
        """`count` `width`-bit numbers as `EntropyWriter._encode_low_bits` wrote them."""
        values = np.zeros(count, dtype=np.int64)
        done = 0
        for part_shift, _ in _split_low_bits(np.zeros(1, dtype=np.int32), width):
            part = np.asarray(self._decoder.decode(_categorical(_uniform_freqs(part_shift)), count))
            values |= part.astype(np.int64) << done
            done += part_shift
        return values

    def _decode_classes(self, model: _Model, count: int, parts: list[tuple[np.ndarray, np.ndarray, int]]
                        ) -> np.ndarray:
        """`count` values under a CLASSES model: the class symbols, then each class's raw bits."""
        assert model.freqs is not None
        try:
            symbols = np.asarray(self._decoder.decode(_categorical(model.freqs), count)).astype(np.int64)
            lengths = (symbols + 1) // 2
            magnitude = np.where(lengths > 0, np.left_shift(1, np.maximum(lengths - 1, 0)), 0)
            for length in range(2, int(lengths.max(initial=0)) + 1):
                where = np.flatnonzero(lengths == length)
                if len(where):
                    magnitude[where] |= self._decode_low_bits(len(where), length - 1)
        except (ValueError, RuntimeError, AssertionError, OverflowError) as exc:
            raise FormatError(f"{self.what}: entropy decoding failed ({exc})") from exc
        parts.append((model.freqs, symbols, int(np.maximum(lengths - 1, 0).sum())))
        return np.where(symbols % 2 == 0, -magnitude, magnitude) + model.lo

    def _model(self, key: str) -> _Model:
        """The next model description (REPEAT: the memory's model for `key`), remembered as used."""
        data = self._models.data
        if self._models.pos < len(data) and data[self._models.pos] == KIND_REPEAT:
            self._models.u8()
            model = self._memory.get(key) if self._memory is not None else None
            if model is None:
                raise FormatError(f"{self.what}: stream {key} repeats a model no earlier frame gave it")
        else:
            model = _read_model(self._models)
        self.used[key] = model
        return model

    def read(self, count: int, name: str = "", contexts: np.ndarray | None = None,
             n_contexts: int = 0) -> np.ndarray:
        """The next stream, `count` int64 values; its cost is appended to `stats` under `name`.

        `contexts`/`n_contexts` must be what the writer was given for this stream (or None if it
        was given none: a SPLIT model is then a format error).
        """
        if count == 0:
            self.stats.append(StreamStats(name, 0, 0, 0.0))
            return np.zeros(0, dtype=np.int64)
        start = self._models.pos
        data = self._models.data
        parts: list[tuple[np.ndarray, np.ndarray, int]] = []
        if self._models.pos < len(data) and data[self._models.pos] == KIND_SPLIT:
            self._models.u8()
            if contexts is None:
                raise FormatError(f"{self.what}: context-split model on a stream without contexts")
            contexts = _check_contexts(contexts, count, n_contexts)
            values = np.zeros(count, dtype=np.int64)
            for bucket in range(n_contexts):
                where = np.flatnonzero(contexts == bucket)
                if len(where) == 0:
                    continue
                if self._models.pos < len(data) and data[self._models.pos] == KIND_SPLIT:
                    raise FormatError(f"{self.what}: nested context-split model")
                values[where] = self._decode(self._model(f"{name}#{bucket}"), len(where), parts)
        else:
            values = self._decode(self._model(name), count, parts)
        self.stats.append(_ReadStreamStats(name, count, 8 * (self._models.pos - start), parts))
        return values

    def check_consumed(self) -> None:
        """Raise FormatError if model descriptions are left over (a sign of a corrupt payload)."""
        if self._models.pos != len(self._models.data):
            raise FormatError(f"{self.what}: unused entropy model descriptions")


_LOW_CHUNK = 12


def _split_low_bits(low: np.ndarray, shift: int) -> list[tuple[int, np.ndarray]]:
    """Low bits in chunks of at most 12 bits, least significant chunk first."""
    parts = []
    done = 0
    while done < shift:
        width = min(_LOW_CHUNK, shift - done)
        parts.append((width, ((low >> done) & ((1 << width) - 1)).astype(np.int32)))
        done += width
    return parts


@functools.lru_cache(maxsize=16)
def _uniform_freqs(bits: int) -> np.ndarray:
    return np.full(1 << bits, TOTAL >> bits, dtype=np.int64)
