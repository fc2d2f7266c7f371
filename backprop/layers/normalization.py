"""BatchNorm and LayerNorm, with PyTorch's conventions and closed-form backwards."""

from __future__ import annotations

import warnings
from math import prod
from typing import Any

import numpy as np

from .._validate import boolean, caller_level, in_range, positive_int
from ._alloc import filled
from ._norms import (
    add_channel_state,
    normalize_rows,
    per_position,
    quiet_at_eps_zero,
    recentred_channels,
    rescaled,
    rows_backward,
    running_affine,
)
from ._sums import batch_sum
from .base import Layer


def _momentum(value: Any) -> float | None:
    """A checked momentum; Keras' meaning (0.9, 0.99: the weight of the old statistics)
    warns, since here it is the new batch's weight, as in PyTorch."""
    m = None if value is None else in_range(value, "momentum", "BatchNorm", 0.0, 1.0)
    if m is not None and 0.9 <= m < 1.0:
        warnings.warn(f"BatchNorm: momentum={m} weighs each new batch by {m} (PyTorch's "
                      f"meaning: running = (1 - momentum) · running + momentum · batch), so "
                      f"the running statistics follow the last batch or two; Keras' "
                      f"momentum={m} is momentum={1 - m:.2g} here", stacklevel=caller_level())
    return m


class BatchNorm(Layer):
    """Batch normalization over ``(N, C)``, ``(N, C, L)``, ``(N, C, H, W)`` or
    ``(N, C, D, H, W)`` input (PyTorch's BatchNorm1d/2d/3d in one class).

    Statistics are per channel ``C``, over the ``M = N·L`` (or ``N·H·W``) values
    of the batch. With ``axes`` the batch and spatial axes and ``gamma``, ``beta``
    broadcast along ``C``::

        Forward:   mu = x.mean(axes)     var = x.var(axes)          (biased)  mu, var (C,)
                   xhat = (x - mu) / sqrt(var + eps)      y = gamma * xhat + beta
        Backward:  dgamma = (dy * xhat).sum(axes)         dbeta = dy.sum(axes)
                   dx = gamma / sqrt(var + eps) / M * (M * dy - dbeta - xhat * dgamma)
        Eval:      y = x * s + (beta - running_mean * s)  s = gamma / sqrt(running_var + eps)
        Running:   running = (1 - momentum) * running + momentum * batch  (var: · M/(M - 1))
        where      axes = (0, 2, ...) the batch and spatial axes, M = their size (N·H·W)
        (use_running_stats=True: y as in eval, dx = dy * s, and dgamma, dbeta as above
        with xhat = (x - running_mean) / sqrt(running_var + eps); affine=False: gamma = 1
        and beta = 0, not parameters; track_running_stats=False: no running statistics,
        batch statistics in training and inference alike)

    The backward is the compact closed form: ``mu`` and ``var`` depend on every
    ``x`` of the channel, and their two terms reduce to ``dbeta`` and
    ``xhat * dgamma``. The layer keeps ``xc = x - mu`` and ``1 / sqrt(var + eps)``, not
    ``xhat``: ``y = xc * (gamma / sqrt(var + eps)) + beta``, ``dgamma = (dy *
    xc).sum(axes) / sqrt(var + eps)``, and ``dx`` is built in ``xc``'s buffer (see
    :mod:`._norms`). Training forwards also update the running statistics, as
    PyTorch does: ``running = (1 - momentum) * running + momentum * batch`` with
    the unbiased variance ``var · M / (M - 1)``; with ``momentum=None`` the running
    statistics are the plain average over all batches so far (``momentum = 1/t`` at
    the t-th, counted in the buffer ``num_batches_tracked``), as PyTorch's
    cumulative moving average. Inference (``training=False``) normalises with the
    running statistics instead, as one affine map per channel, ``y = x * s + (beta -
    running_mean * s)`` with ``s = gamma / sqrt(running_var + eps)``: two passes over
    ``x``, as in PyTorch's inference kernel.

    With ``use_running_stats=True`` training forwards normalise with the running
    statistics too and leave them unchanged (fine-tuning with frozen BatchNorm;
    ``gamma`` and ``beta`` still learn). ``mu`` and ``var`` are then constants,
    so the backward is that of the affine map ``y = gamma * xhat + beta``::

        Backward:  dgamma, dbeta as above    dx = dy * gamma / sqrt(running_var + eps)

    Args:
        num_features: ``C``.
        eps: Added to the variance inside the square root, > 0 (PyTorch refuses 0 in
            training too).
        momentum: Weight of the batch statistic in the running average, in [0, 1];
            None for the cumulative average of every batch (as in PyTorch). Keras'
            momentum is one minus this (its 0.99 is 0.01 here); 0.9 up to 1 warns.
        affine: Learn ``gamma`` and ``beta`` (default True); False: ``y = xhat``, no
            parameters (PyTorch's ``affine``).
        track_running_stats: Keep the running statistics (default True); False: no
            buffers, and inference normalises by the batch's own statistics as training
            does (PyTorch's ``track_running_stats``), so an output depends on the other
            samples of its batch (``predict``'s ``batch_size``; a last batch of one sample
            joins the batch before it there).
        use_running_stats: Normalise with the running statistics in training too.
        dtype: Parameter, buffer and input dtype (default float32).

    Raises:
        ValueError: A forward with batch statistics has ``M = 1`` value per channel (its
            variance is undefined); ``use_running_stats=True`` without running statistics.
    """

    _set_once = frozenset({"num_features", "affine", "track_running_stats"})  # see Layer._set_once

    _cache_attrs = ("_xc", "_inv_std", "_batch_stats")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, *,
                 use_running_stats: bool = False, dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        self.num_features = positive_int(num_features, "num_features", "BatchNorm")
        self.eps = in_range(eps, "eps", "BatchNorm", 0.0, low_open=True)
        self.affine = boolean(affine, "affine", "BatchNorm")
        self.track_running_stats = boolean(track_running_stats, "track_running_stats",
                                           "BatchNorm")
        self.use_running_stats = use_running_stats
        self._momentum = _momentum(momentum)
        add_channel_state(self, self.num_features, self.affine, self.track_running_stats)
        self._count_batches()
        self._xc: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None
        self._batch_stats: bool | None = None

    @property
    def use_running_stats(self) -> bool:
        """Normalise with the running statistics in training too; may be changed (checked
        as the constructor checks it: not without running statistics)."""
        return self._use_running_stats

    @use_running_stats.setter
    def use_running_stats(self, value: bool) -> None:
        value = boolean(value, "use_running_stats", "BatchNorm")
        if value and not self.track_running_stats:
            raise ValueError("BatchNorm: expected use_running_stats=False with "
                             "track_running_stats=False (there are no running statistics to "
                             "normalise with), got use_running_stats=True")
        self._use_running_stats = value

    @property
    def momentum(self) -> float | None:
        """The running statistics' momentum; may be changed (checked as the constructor
        checks it). Switching from a number to None starts ``num_batches_tracked`` at 0
        (setting None again keeps the count), so the statistics become the plain average
        of the batches that follow: PyTorch's recipe to
        recompute them, ``reset_running_stats()`` then ``momentum = None``. (PyTorch counts
        every training batch whatever the momentum, so there a switch to None without the
        reset weighs the next batch 1/(t + 1) against the old running values; here the
        count, and the average, start at the switch.)"""
        return self._momentum

    @momentum.setter
    def momentum(self, value: float | None) -> None:
        self._momentum = _momentum(value)
        self._count_batches()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1 and the batch count 0, in place (PyTorch's
        ``reset_running_stats``); nothing without them (``track_running_stats=False``)."""
        if not self.track_running_stats:
            return
        self.buffers["running_mean"].fill(0)
        self.buffers["running_var"].fill(1)
        if "num_batches_tracked" in self.buffers:
            self.buffers["num_batches_tracked"].fill(0)

    def _count_batches(self) -> None:
        """``num_batches_tracked`` exists exactly when momentum is None (the file format:
        a count, kept and saved with the statistics it weighs)."""
        if (self._momentum is None and self.track_running_stats
                and "num_batches_tracked" not in self.buffers):
            self.buffers["num_batches_tracked"] = np.zeros(1, dtype=self.dtype)
        elif self._momentum is not None or not self.track_running_stats:
            self.buffers.pop("num_batches_tracked", None)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        if type(training) is not bool:  # "False", a str, would update the statistics
            training = boolean(training, "training", repr(self))
        ndim = getattr(x, "ndim", None)
        spatial = {2: (), 3: ("L",), 4: ("H", "W"), 5: ("D", "H", "W")}.get(ndim, ())
        if ndim is not None and ndim not in (2, 3, 4, 5):
            raise ValueError(f"{self!r}: expected input of shape (N, C), (N, C, L), "
                             f"(N, C, H, W) or (N, C, D, H, W), got {x.shape}")
        self._check_input(x, "N", self.num_features, *spatial)
        if self.track_running_stats and not (training and not self.use_running_stats):
            y, inv_std = running_affine(self, x)
            if training:  # use_running_stats: the backward needs x - running_mean
                xc = x - per_position(self.buffers["running_mean"], x.shape)
                self._xc, self._inv_std, self._batch_stats = xc, inv_std, False
            return y
        mu = self._batch_mean(x)  # the batch's statistics (also in inference without running)
        xc = x - per_position(mu, x.shape)  # centred once: it also gives the batch variance
        m = x.size // self.num_features
        var = batch_sum(self._per_channel(xc), self._per_channel(xc))
        var *= 1.0 / m
        recentred_channels(self._per_channel(xc), mu, var)  # |mean| past 64 std: see there
        if training and self.track_running_stats:
            self._track(mu, var, m)
        inv_std = 1 / np.sqrt(var + self.eps)
        if not np.isfinite(var).all():  # one test over C sums: squares past the range
            self._widened(x, mu, xc, inv_std, ~np.isfinite(var))
        scale = self._gamma() * inv_std
        y = np.multiply(xc, per_position(scale, x.shape), out=None if training else xc)
        if self.affine:
            y += per_position(self.params["beta"], x.shape)
        if training:
            self._xc, self._inv_std, self._batch_stats = xc, inv_std, True
        return y

    def _widened(self, x: np.ndarray, mu: np.ndarray, xc: np.ndarray, inv_std: np.ndarray,
                 bad: np.ndarray) -> None:
        """The finite channels whose float32 sums overflowed (values past ~1e19 square past
        float32's range): ``mu``, ``xc`` and ``inv_std`` from float64 sums, in place, as
        the other norms' (:func:`._norms.center_rows`); in float32 they gave an output of
        zeros, as PyTorch's float32 kernels do. The running variance stays inf (its true
        value is past float32's range), and channels holding an inf or NaN stay NaN."""
        wide = self._per_channel(x)[:, bad].astype(np.float64)  # (N, k, S)
        finite = np.isfinite(wide).all(axis=(0, 2))
        idx = np.flatnonzero(bad)[finite]
        mean = wide[:, finite].mean(axis=(0, 2))
        c = wide[:, finite] - mean[None, :, None]
        mu[idx] = mean
        with np.errstate(over="ignore"):  # a centred value past float32's range: inf
            self._per_channel(xc)[:, idx] = c
            inv_std[idx] = 1 / np.sqrt((c * c).mean(axis=(0, 2)) + self.eps)

    def _gamma(self) -> np.ndarray | float:
        """``gamma``, or 1 without the affine map (``affine=False``)."""
        return self.params["gamma"] if self.affine else 1.0

    def _per_channel(self, a: np.ndarray) -> np.ndarray:
        """``a`` as ``(N, C, S)``, ``S`` its positions (1 for ``(N, C)`` input)."""
        return a.reshape(a.shape[0], self.num_features, prod(a.shape[2:]))

    def _batch_mean(self, x: np.ndarray) -> np.ndarray:
        m = x.size // self.num_features
        if m < 2:
            raise ValueError(f"{self!r}: expected more than 1 value per channel to normalise "
                             f"with batch statistics, got input of shape {x.shape} (use a "
                             f"batch of 2 or more)")
        mu = batch_sum(self._per_channel(x))
        mu *= 1.0 / m
        return mu

    def _check_buffer(self, name: str, value: np.ndarray, key: str, who: str) -> None:
        """Running statistics it divides by or counts with: a negative variance would give
        NaN outputs from the first inference on (a damaged or hand-edited file)."""
        bad = ~np.isfinite(value) | (value < 0 if name != "running_mean" else False)
        if bad.any():
            what = "finite values" if name == "running_mean" else "finite values >= 0"
            raise ValueError(f"{who}: expected {key!r} as {what}, got {int(bad.sum())} that "
                             f"are not (e.g. {value[bad].reshape(-1)[0]})")

    def _track(self, mu: np.ndarray, var: np.ndarray, m: int) -> None:
        """Update the running statistics from the batch mean and biased variance."""
        running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
        momentum = self.momentum
        if momentum is None:  # the t-th batch weighs 1/t: the average of all batches
            count = self.buffers["num_batches_tracked"]
            count += 1
            momentum = 1.0 / float(count[0])
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += (momentum * m / (m - 1)) * var  # unbiased, as PyTorch tracks it

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xc, inv_std, batch_stats = self._pop("_xc", "_inv_std", "_batch_stats")
        self._check_dy(dy, xc.shape)
        dy3 = self._per_channel(dy)
        scale = per_position(self._gamma() * inv_std, dy.shape)
        inv_std, s = rescaled(inv_std)  # channels of std past ~1e18: see rescaled
        if s is not None:
            xc *= per_position(s, xc.shape)
        dbeta = batch_sum(dy3, out=self.grads.get("beta"))
        dgamma = batch_sum(dy3, self._per_channel(xc), out=self.grads.get("gamma"))
        dgamma *= inv_std  # Σ dy·xhat = inv_std · Σ dy·xc
        if not batch_stats:
            return dy * scale
        m = xc.size // self.num_features  # dx = scale·(dy - (dbeta + xhat·dgamma) / M)
        xc *= per_position(inv_std * dgamma * (1 / m), xc.shape)
        xc += per_position(dbeta * (1 / m), xc.shape)
        dx = np.subtract(dy, xc, out=xc)  # in xc's buffer: the cache, freed here
        dx *= scale
        return dx


class LayerNorm(Layer):
    """Layer normalization over the trailing ``normalized_shape`` axes (PyTorch semantics).

    Each sample (and each leading position, e.g. each token) is normalised over
    its last ``len(normalized_shape)`` axes, ``D = prod(normalized_shape)`` values;
    ``gamma`` and ``beta`` have shape ``normalized_shape`` and act elementwise.
    With ``axes`` the trailing axes and ``lead`` the others::

        Forward:   mu = x.mean(axes)     var = x.var(axes)          (biased)
                   xhat = (x - mu) / sqrt(var + eps)      y = gamma * xhat + beta
        Backward:  dgamma = (dy * xhat).sum(lead)         dbeta = dy.sum(lead)
                   g = dy * gamma
                   dx = 1 / sqrt(var + eps) / D
                        * (D * g - g.sum(axes) - xhat * (g * xhat).sum(axes))
        where      axes = the last len(normalized_shape) axes, D = their size,
                   lead = the axes before them (mu, var per lead position)

    Behaves the same in training and inference (no running statistics). Without
    ``elementwise_affine`` there are no parameters (``y = xhat``); without ``bias`` no
    ``beta`` (``y = gamma * xhat``), as in PyTorch. The backward works from the cached
    ``xc = x - mu`` and ``1 / sqrt(var + eps)`` (``dgamma`` as ``(dy * xc)`` summed with
    the rows' ``1 / sqrt(var + eps)`` as weights) and builds ``dx`` in ``xc``'s buffer;
    both passes go a block of rows at a time, so a block stays in the cache from one
    statement to the next (see :func:`._norms.normalize_rows`).

    Args:
        normalized_shape: Trailing shape to normalise over: an int or a tuple.
        eps: Added to the variance inside the square root (default 1e-5); 0 is allowed,
            as in PyTorch: a row of equal values then gives NaN.
        elementwise_affine: Learn ``gamma`` (and ``beta``) (default True).
        bias: Learn ``beta`` when ``elementwise_affine`` (default True).
        dtype: Parameter and input dtype (default float32).
    """

    _set_once = frozenset({"normalized_shape", "elementwise_affine", "bias"})  # see Layer

    _cache_attrs = ("_xc", "_inv_std")

    @property
    def mask_passes(self) -> bool:  # type: ignore[override]
        """A padding mask ``(N, T)`` passes a norm over the last axis alone (each step)."""
        return len(self._dims) == 1

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        dims = (tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list))
                else (normalized_shape,))
        if not dims:
            raise ValueError("LayerNorm: expected a non-empty normalized_shape, got ()")
        dims = tuple(positive_int(d, "normalized_shape", "LayerNorm") for d in dims)
        self.normalized_shape = dims[0] if isinstance(normalized_shape, (int, np.integer)) \
            else dims
        self._dims = dims
        self.eps = in_range(eps, "eps", "LayerNorm", 0.0)  # 0 too: see quiet_at_eps_zero
        self.elementwise_affine = boolean(elementwise_affine, "elementwise_affine", "LayerNorm")
        self.bias = boolean(bias, "bias", "LayerNorm")
        if self.elementwise_affine:
            self.add_param("gamma", filled("LayerNorm", "gamma", dims, self.dtype, 1.0))
            if self.bias:
                self.add_param("beta", filled("LayerNorm", "beta", dims, self.dtype, 0.0))
        self._xc: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None

    @quiet_at_eps_zero
    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        lead = max(getattr(x, "ndim", 0) - len(self._dims), 1)
        self._check_input(x, "N", *(None,) * (lead - 1), *self._dims)
        y, xc, inv_std = normalize_rows(x.reshape(-1, prod(self._dims)), self.eps,  # (M, D)
                                        _flat(self.params, "gamma"),
                                        _flat(self.params, "beta"), training)
        if training:  # xc in x's shape (a view): backward checks dy against it
            self._xc, self._inv_std = xc.reshape(x.shape), inv_std
        return y.reshape(x.shape)

    @quiet_at_eps_zero
    def backward(self, dy: np.ndarray) -> np.ndarray:
        xc, inv_std = self._pop("_xc", "_inv_std")
        self._check_dy(dy, xc.shape)
        d = prod(self._dims)
        xc, dys = xc.reshape(-1, d), dy.reshape(-1, d)
        inv_std, s = rescaled(inv_std)  # rows of std past ~1e18: see rescaled
        if s is not None:
            xc *= s[:, None]
        dx = rows_backward(dys, xc, inv_std, _flat(self.params, "gamma"),
                           _flat(self.grads, "gamma"), _flat(self.grads, "beta"))
        if s is not None:
            dx *= s[:, None]
        return dx.reshape(dy.shape)


def _flat(arrays: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    """LayerNorm's ``arrays[name]`` as ``(D,)`` (a view), or None where it has none."""
    return arrays[name].reshape(-1) if name in arrays else None
