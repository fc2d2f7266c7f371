"""What the normalization layers share: their per-channel state, the statistics of rows
(LayerNorm's, GroupNorm's and InstanceNorm's), the closing step of their backward, the
inference map of running statistics (BatchNorm's and InstanceNorm's), LayerNorm's
passes over blocks of rows, and GroupNorm's and InstanceNorm's ufunc buffer size.

The layers cache ``xc = x - mu`` and ``inv_std = 1 / sqrt(var + eps)`` rather than
``xhat = xc * inv_std``: the output is then one product and one sum per element, and
the backward folds ``inv_std`` into its per-row or per-channel coefficients, so neither
pass spends a pass over the data on ``xhat`` itself. The backward works in ``xc``'s
buffer (the cache, freed by it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from math import prod, sqrt
from typing import Any

import numpy as np

from ._alloc import filled
from ._sums import batch_sum, column_sum, row_sum


def quiet_at_eps_zero(method: Callable) -> Callable:
    """A row norm's ``forward``/``backward`` with ``eps = 0`` (allowed, as in PyTorch):
    a constant row (RMSNorm: a row of zeros) has ``inv_std = 1 / 0 = inf`` and gives NaN,
    as PyTorch's, without NumPy's divide and invalid warnings along the way."""
    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.eps != 0:
            return method(self, *args, **kwargs)
        with np.errstate(divide="ignore", invalid="ignore"):
            return method(self, *args, **kwargs)
    return run


def unbuffered(s: int) -> AbstractContextManager:
    """NumPy's ufunc buffers no longer than a row of ``s`` values, when ``s >= 256``
    (GroupNorm's and InstanceNorm's passes; results are the same bits).

    A ufunc broadcasting a per-row value over ``(M, S)`` rows (``xc * inv_std[:, None]``)
    copied its operands through buffers of :func:`np.getbufsize` (8192) values where a row
    is shorter: 2048x1024 float32 rows times a column took 0.52 ms, 0.23-0.31 with buffers
    of 256-1024 values (a plain product of two such arrays: 0.21); 512x4096 0.50, 0.26
    (NumPy 2.4, one thread). Rows shorter than 256 are as fast or faster buffered (128:
    0.58 ms, 0.70 with buffers of 64-256)."""
    return nullcontext() if s < 256 else _bufsize(min(8192, 1 << (s.bit_length() - 1)))


@contextmanager
def _bufsize(size: int) -> Iterator[None]:
    before = np.setbufsize(size)
    try:
        yield
    finally:
        np.setbufsize(before)


def add_channel_state(layer: Any, c: int, affine: bool, running: bool) -> None:
    """A per-channel norm's ``gamma`` (ones) and ``beta`` (zeros) when ``affine``, and its
    ``running_mean`` (zeros) and ``running_var`` (ones) when ``running``: ``(C,)`` each."""
    who, dt = type(layer).__name__, layer.dtype
    if affine:
        layer.add_param("gamma", filled(who, "gamma", c, dt, 1.0))
        layer.add_param("beta", filled(who, "beta", c, dt, 0.0))
    if running:
        layer.buffers["running_mean"] = filled(who, "running_mean", c, dt, 0.0, gradient=False)
        layer.buffers["running_var"] = filled(who, "running_var", c, dt, 1.0, gradient=False)


def per_position(v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A per-channel ``v (C,)`` repeated over each channel's positions, in the shape of
    one sample ``(C, *)``: it broadcasts over the batch as one contiguous run per sample
    (broadcasting ``(C, 1, 1)`` over NCHW maps instead: 0.93 vs 0.68 ms a pass, and
    in place 0.61 vs 0.28, 32x64x28x28 float32)."""
    return np.repeat(v, prod(shape[2:])).reshape(shape[1:])


def running_affine(layer: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` normalised by ``layer``'s running statistics as one affine map per channel
    (two passes over ``x``, as PyTorch's inference kernel), with its ``gamma`` and
    ``beta`` if it has them; also ``1 / sqrt(running_var + eps)`` (BatchNorm's and
    InstanceNorm's inference)."""
    inv_std = 1 / np.sqrt(layer.buffers["running_var"] + layer.eps)
    scale = inv_std * layer.params["gamma"] if "gamma" in layer.params else inv_std
    shift = -layer.buffers["running_mean"] * scale
    if "beta" in layer.params:
        shift += layer.params["beta"]
    y = x * per_position(scale, x.shape)
    y += per_position(shift, x.shape)
    return y, inv_std


def center_rows(rows: np.ndarray, eps: float, out: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(xc, mu, ss, inv_std)`` of each row of ``rows (M, D)`` over its ``D`` values:
    ``xc = rows - mu`` (into ``out`` when given), ``ss = Σ xc²`` and ``inv_std = 1 /
    sqrt(ss / D + eps)``, every reduction a BLAS product (see :mod:`._sums`). Each row's
    values depend on that row alone, so blocks of rows give the rows' own values."""
    d = rows.shape[1]
    with np.errstate(over="ignore", invalid="ignore"):  # sums past the range: see below
        mu = row_sum(rows)
        mu *= 1 / d
        xc = np.subtract(rows, mu[:, None], out=out)
        ss = row_sum(xc, xc)  # Σ (x - mu)², without a squared copy
        far = np.abs(mu) > np.sqrt(ss) * sqrt(_FAR / d)  # a mean far from its spread (no
        # square of mu, nor ss times 682: past ~1.8e19 they overflowed, inf > inf hid such
        # a row, and its outputs came out finite and wrong): the float32 mean's
    if far.any():  # round-off shifts every xc of the row alike; one more centring pass
        _recentred(xc, mu, ss, far)  # takes it out (D=1000 at mean 1e6: see _recentred)
    if eps == 0:  # a row of equal values whose mean rounds leaves ss ~1e-16·x², not 0, and
        # 1 / sqrt(ss / D) makes its xc ±1: its variance is 0, as PyTorch's Welford sums
        equal = rows.max(axis=1) == rows.min(axis=1)
        ss[equal] = 0.0
        xc[equal] = 0.0
    var = ss * (1 / d)
    var += eps
    inv_std = np.sqrt(var, out=var)
    np.divide(1, inv_std, out=inv_std)
    if not np.isfinite(ss).all():  # one test over the M rows' sums
        _widened(rows, xc, mu, inv_std, eps, ~np.isfinite(ss))
    return xc, mu, ss, inv_std


# A row whose mean is past this many times its variance (|mean| > 64 std) is centred twice.
_FAR = 4096.0


def _recentred(xc: np.ndarray, mu: np.ndarray, ss: np.ndarray, far: np.ndarray) -> None:
    """Rows ``far`` centred once more, in place: ``c = mean(xc)`` (the first mean's
    round-off) moves from ``xc`` to ``mu``, and ``ss`` is summed again. ``x - mu`` is exact
    there and ``c`` a mean of small values, so ``xc`` comes out nearly exact: LayerNorm
    (1000) of float32 rows ``1e6 + N(0, 1)`` within 7e-7 of float64 (it was 0.155 off;
    PyTorch's float32 kernel 0.10)."""
    idx = np.flatnonzero(far)
    rows = xc[idx]
    c = row_sum(rows)
    c *= 1 / xc.shape[1]
    rows -= c[:, None]
    xc[idx], mu[idx], ss[idx] = rows, mu[idx] + c, row_sum(rows, rows)


def recentred_channels(xc: np.ndarray, mu: np.ndarray, var: np.ndarray) -> None:
    """BatchNorm's channels of ``xc (N, C, S)`` whose mean is past 64 standard deviations
    centred once more, in place, as :func:`_recentred` does rows: ``mu`` and the biased
    ``var`` with them. ``BatchNorm(4)`` on a float32 batch of 64 rows ``1e6 + N(0, 1)``
    gave outputs 0.083 off float64 (PyTorch's float32 kernel 0.127), now ~1e-6."""
    far = np.abs(mu) > np.sqrt(var) * sqrt(_FAR)  # (no square: see center_rows)
    if not far.any():
        return
    idx = np.flatnonzero(far)
    part = xc[:, idx]
    m = part.shape[0] * part.shape[2]
    c = batch_sum(part)
    c *= 1 / m
    part -= c[None, :, None]
    xc[:, idx], mu[idx] = part, mu[idx] + c
    ss = batch_sum(part, part)
    ss *= 1 / m
    var[idx] = ss


def _widened(rows: np.ndarray, xc: np.ndarray, mu: np.ndarray, inv_std: np.ndarray,
             eps: float, bad: np.ndarray) -> None:
    """The finite ``rows`` among ``bad`` whose sums overflowed (float32 values past
    ~1e19 square past its range; a row's sum past ~3e38): their ``xc``, ``mu`` (an
    InstanceNorm's running mean) and ``inv_std`` from float64 sums, in place. In float32
    they gave ``inv_std = 0`` and an output of zeros (PyTorch's float32 kernels give NaN
    there); rows holding an inf or NaN stay NaN, as in PyTorch."""
    wide = rows[bad].astype(np.float64)
    finite = np.isfinite(wide).all(axis=1)
    idx = np.flatnonzero(bad)[finite]
    mean = wide[finite].mean(axis=1, keepdims=True)
    c = wide[finite] - mean
    mu[idx] = mean[:, 0]
    with np.errstate(over="ignore"):  # a centred value past float32's range: inf, as before
        xc[idx] = c
    with np.errstate(over="ignore"):  # float64 squares past ~1e154: inv_std 0, as PyTorch's
        inv_std[idx] = 1 / np.sqrt((c * c).mean(axis=1) + eps)


def rescaled(inv_std: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A backward's ``(inv_std / s, s)`` for rows (or channels) whose ``1 / sqrt(var +
    eps)`` is below 2^-60, ``s`` a power of two near each such ``inv_std`` (1 elsewhere),
    or ``(inv_std, None)`` when there is none (one comparison over the rows).

    The caller multiplies its cached ``xc`` by ``s`` (exact): the backward's sums
    ``Σ dy·xc``, with ``xc`` up to ~3e38, overflowed to ±inf and made ``dx`` and ``dgamma``
    ±inf where float64's are finite; they are the same for ``xc·s`` and ``inv_std / s``
    (``xhat`` is), and only ``dx``'s last factor, ``inv_std`` itself, needs the true value
    (or those rows of ``dx`` times ``s``)."""
    if inv_std.min(initial=_HUGE) >= _HUGE:  # one reduction (NaN: the mask below)
        return inv_std, None
    huge = inv_std < _HUGE
    s = np.ones_like(inv_std)
    s[huge] = np.ldexp(1.0, np.frexp(inv_std[huge])[1])
    return inv_std / s, s


# 1 / std below this (std past ~1.2e18): the backward's products are rescaled (rescaled).
_HUGE = 2.0 ** -60


def rows_dx(g: np.ndarray, xc: np.ndarray, inv_std: np.ndarray, g_sum: np.ndarray,
            g_xc: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The rows' backward, with ``g = dy * gamma`` and ``xhat = xc * inv_std``::

        dx = inv_std * (g - g.sum() / D - xhat * (g * xhat).sum() / D)
           = inv_std * (g - xc * inv_std² * g_xc / D - g_sum / D)

    given ``g_sum = g.sum()`` and ``g_xc = (g * xc).sum()`` per row of ``(M, D)``, into
    ``out`` (``g``'s buffer, or ``xc``'s when ``g`` is the caller's ``dy``); ``xc`` is
    overwritten (the cache, freed after)."""
    k = inv_std * g_xc  # then times inv_std again: inv_std² underflows when |x| ~ 1e37
    k *= inv_std
    k *= 1 / xc.shape[1]
    xc *= k[:, None]
    dx = np.subtract(g, xc, out=out)
    dx -= (g_sum * (1 / xc.shape[1]))[:, None]
    dx *= inv_std[:, None]
    return dx


# LayerNorm's passes go over blocks of rows of about this many bytes (the array of x's, of
# xc's, of y's each), so a block stays in the cache from one statement to the next (best
# of 256 KB to 2 MB on 64x128x512, 16x196x768, 8x64x4096 and 256x16384 float32, 1 and 2
# threads), in a multiple of _ROWS rows: at least that many (fewer: a block's calls cost
# more than its passes), and with OpenBLAS's matrix-vector kernels, which take rows in
# groups, a block's rows mostly get the bits they get in one product over all rows (not
# all: short rows, D of 7 or 8 over 40,000 rows, differed by up to 4.8e-7 in a few
# thousand, as another batch size may change the last bits)
_BLOCK_BYTES = 1 << 20
_ROWS = 16


def block_rows(rows: np.ndarray) -> int:
    """The rows of ``rows (M, D)`` in a block of about :data:`_BLOCK_BYTES`."""
    return max(_BLOCK_BYTES // (rows.shape[1] * rows.itemsize) // _ROWS, 1) * _ROWS


def normalize_rows(rows: np.ndarray, eps: float, gamma: np.ndarray | None,
                   beta: np.ndarray | None, training: bool
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LayerNorm's forward ``(y, xc, inv_std)`` of ``rows (M, D)`` (``gamma``, ``beta``
    ``(D,)`` or None): :func:`center_rows` and ``y = xc * inv_std * gamma + beta`` a block
    of rows at a time (:func:`block_rows`), so each pass reads what the one before left in
    the cache (the same values: each row's depend on that row alone). In inference ``y``
    is built in ``xc``'s buffer."""
    r = block_rows(rows)
    if len(rows) <= r:  # one block: no buffers to set up
        xc, _, _, inv_std = center_rows(rows, eps)
        return _affine(xc, inv_std, gamma, beta, None if training else xc), xc, inv_std
    xc = np.empty(rows.shape, rows.dtype)
    inv_std = np.empty(rows.shape[0], rows.dtype)
    y = np.empty_like(xc) if training else xc
    for i in range(0, len(rows), r):
        b = slice(i, i + r)
        inv_std[b] = center_rows(rows[b], eps, out=xc[b])[3]
        _affine(xc[b], inv_std[b], gamma, beta, y[b])
    return y, xc, inv_std


def _affine(xc: np.ndarray, inv_std: np.ndarray, gamma: np.ndarray | None,
            beta: np.ndarray | None, out: np.ndarray | None) -> np.ndarray:
    y = np.multiply(xc, inv_std[:, None], out=out)
    if gamma is not None:
        y *= gamma
    if beta is not None:
        y += beta
    return y


def rows_backward(dys: np.ndarray, xc: np.ndarray, inv_std: np.ndarray,
                  gamma: np.ndarray | None, dgamma: np.ndarray | None,
                  dbeta: np.ndarray | None) -> np.ndarray:
    """LayerNorm's ``dx`` of rows ``(M, D)``, built in ``xc``'s buffer a block of rows at a
    time as :func:`normalize_rows`; with ``gamma`` it fills ``dgamma`` (and ``dbeta`` when
    given), ``(D,)``, from the blocks' sums."""
    r = block_rows(xc)
    if len(xc) <= r:
        return _block_dx(dys, xc, inv_std, gamma, dgamma, dbeta, None, True)
    g = None if gamma is None else np.empty((r, xc.shape[1]), xc.dtype)  # a block's
    for i in range(0, len(xc), r):
        b = slice(i, i + r)
        _block_dx(dys[b], xc[b], inv_std[b], gamma, dgamma, dbeta, g, i == 0)
    return xc


def _block_dx(dy: np.ndarray, xc: np.ndarray, inv_std: np.ndarray, gamma: np.ndarray | None,
              dgamma: np.ndarray | None, dbeta: np.ndarray | None, g: np.ndarray | None,
              first: bool) -> np.ndarray:
    """One block's ``dx`` into ``xc`` (in ``g``'s buffer, when given, ``dy·xc`` then ``g =
    dy·gamma``), its sums written into ``dgamma`` and ``dbeta`` (``first``) or added to
    them. ``dy·xc`` gives ``dgamma`` (weighted by ``inv_std``) and ``g_xc`` (by
    ``gamma``); without ``gamma``, ``g = dy``."""
    if gamma is None:
        return rows_dx(dy, xc, inv_std, row_sum(dy), row_sum(dy, xc), out=xc)
    g = np.multiply(dy, xc, out=None if g is None else g[:len(xc)])
    part = column_sum(g, dgamma if first else None, w=inv_std)
    if not first:
        dgamma += part
    g_xc = row_sum(g, w=gamma)
    if dbeta is not None:
        part = column_sum(dy, dbeta if first else None)
        if not first:
            dbeta += part
    g_sum = row_sum(dy, w=gamma)
    np.multiply(dy, gamma, out=g)
    return rows_dx(g, xc, inv_std, g_sum, g_xc, out=xc)
