"""Instance normalization (PyTorch's ``InstanceNorm1d``, ``InstanceNorm2d`` and
``InstanceNorm3d``)."""

from __future__ import annotations

from math import prod
from typing import Any, ClassVar

import numpy as np

from .._validate import boolean, in_range, positive_int
from ._norms import add_channel_state, quiet_at_eps_zero, running_affine
from ._spatial import check_batched_channels
from .base import Layer
from .groupnorm import groups_dx, normalize_groups
from .normalization import BatchNorm


class _InstanceNorm(Layer):
    """Normalise each channel of each sample over its positions; see the subclasses.

    With ``x_nc`` the ``D = prod(*)`` values of sample n, channel c, and ``gamma``,
    ``beta`` per channel::

        Forward:   mu = x_nc.mean()     var = x_nc.var()          (biased)
                   xhat = (x_nc - mu) / sqrt(var + eps)      y = gamma[c] * xhat + beta[c]
        Backward:  dgamma[c] = (dy * xhat).sum over N and the positions of channel c
                   dbeta[c] = dy.sum over N and the positions of channel c
                   g = dy * gamma[c]
                   dx_nc = 1 / sqrt(var + eps) / D * (D * g - g.sum() - xhat * (g * xhat).sum())
        Running:   running = (1 - momentum) * running + momentum * batch.mean(N)
                   (batch: each (n, c)'s mu, and its var · D/(D - 1), unbiased)
        Eval:      y = x * s + (beta - running_mean * s)  s = gamma / sqrt(running_var + eps)
        (affine=False: gamma = 1 and beta = 0, not parameters; Eval only with
        track_running_stats=True, else inference normalises as training does)

    This is :class:`GroupNorm` with one channel a group (its forward and backward, from the
    cached ``x_nc - mu`` and ``1 / sqrt(var + eps)``), plus PyTorch's optional running
    statistics: a training forward always normalises by each sample's own statistics (the
    backward above); with ``track_running_stats`` it also averages them over the batch into
    ``running_mean``/``running_var``, as PyTorch does, and inference normalises by those.

    Differences from PyTorch: an unbatched ``(C, *)`` input is refused (PyTorch takes it as
    one sample), and so is a channel count other than ``num_features`` (PyTorch only warns
    without ``affine``); positions of size 0 are refused with batch statistics as positions
    of size 1 are in both; a batch of 0 samples leaves the running statistics unchanged;
    ``momentum=None`` leaves them unchanged, as PyTorch's (which then uses 0); there is no
    ``num_batches_tracked`` (:func:`from_torch` drops PyTorch's, which InstanceNorm never
    reads).

    Args:
        num_features: ``C``, the size of axis 1 of the input.
        eps: Added to the variance inside the square root (default 1e-5, as PyTorch); 0
            is allowed: a plane of equal values then normalises to ``beta`` (its
            ``1 / sqrt(var + eps)`` taken as 0, as PyTorch's batch-norm kernel does; in
            float64 PyTorch's two-pass variance leaves some such planes ±1 by rounding).
        momentum: Weight of the batch statistic in the running average, in [0, 1]
            (default 0.1); None: the running statistics never change (PyTorch's None).
        affine: Learn ``gamma`` and ``beta`` (default False, as PyTorch).
        track_running_stats: Keep running statistics for inference (default False, as
            PyTorch).
        dtype: Parameter, buffer and input dtype (default float32).

    Raises:
        ValueError: unbatched input; a forward with the samples' statistics on fewer than 2
            positions per channel (their variance is undefined).
    """

    _set_once = frozenset({"num_features", "affine", "track_running_stats"})  # see Layer._set_once

    _axes: ClassVar[tuple[str, ...]]
    _cache_attrs = ("_xc", "_inv_std")
    _check_buffer = BatchNorm._check_buffer  # a loaded running_var < 0 would give NaN

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, *,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype=dtype)
        who = type(self).__name__
        self.num_features = positive_int(num_features, "num_features", who)
        self.eps = in_range(eps, "eps", who, 0.0)  # 0 too: see quiet_at_eps_zero
        self.momentum = None if momentum is None else in_range(momentum, "momentum", who,
                                                               0.0, 1.0)
        self.affine = boolean(affine, "affine", who)
        self.track_running_stats = boolean(track_running_stats, "track_running_stats", who)
        add_channel_state(self, self.num_features, self.affine, self.track_running_stats)
        self._xc: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None

    @quiet_at_eps_zero
    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        if type(training) is not bool:  # "False", a str, would update the statistics
            training = boolean(training, "training", repr(self))
        check_batched_channels(self, x, self.num_features, self._axes)
        if self.track_running_stats and not training:
            return running_affine(self, x)[0]
        n, c, d = x.shape[0], x.shape[1], prod(x.shape[2:])
        if d < 2:
            raise ValueError(f"{self!r}: expected more than 1 position per channel to "
                             f"normalise with each sample's statistics, got input of shape "
                             f"{x.shape}")
        # one (sample, channel) a row: GroupNorm's groups of one channel
        y, xc, mu, ss, inv_std = normalize_groups(x, c, self.eps, self.params, training,
                                                  constant_to_beta=True)
        if training and self.track_running_stats and n and self.momentum is not None:
            self._track(mu, ss, d, n)
        if training:
            self._xc, self._inv_std = xc, inv_std
        return y

    @quiet_at_eps_zero
    def backward(self, dy: np.ndarray) -> np.ndarray:
        xc, inv_std = self._pop("_xc", "_inv_std")
        self._check_dy(dy, xc.shape)
        return groups_dx(dy, xc, inv_std, self.num_features, self.params, self.grads)

    def _track(self, mu: np.ndarray, ss: np.ndarray, d: int, n: int) -> None:
        """Running statistics from each row's mean and unbiased variance ``Σ (x - mu)² /
        (D - 1)`` (exact to rounding, where ``1/inv_std² - eps`` would cancel for
        variances near eps), averaged over the batch (PyTorch's order: per sample, then
        the mean over N)."""
        m = self.momentum
        for name, batch in (("running_mean", mu), ("running_var", ss / (d - 1))):
            running = self.buffers[name]
            running *= 1 - m
            running += m * batch.reshape(n, self.num_features).mean(0)


class InstanceNorm1D(_InstanceNorm):
    """Instance normalization of ``(N, C, L)`` input: each sample's channel over its ``L``
    positions (PyTorch's ``InstanceNorm1d``). The math, options and differences from
    PyTorch are those of the shared base, below."""

    _axes = ("L",)
    __doc__ = (__doc__ or "") + "\n" + (_InstanceNorm.__doc__ or "")


class InstanceNorm2D(_InstanceNorm):
    """Instance normalization of ``(N, C, H, W)`` input: each sample's channel over its
    ``H·W`` positions (PyTorch's ``InstanceNorm2d``). The math, options and differences
    from PyTorch are those of the shared base, below."""

    _axes = ("H", "W")
    __doc__ = (__doc__ or "") + "\n" + (_InstanceNorm.__doc__ or "")


class InstanceNorm3D(_InstanceNorm):
    """Instance normalization of ``(N, C, D, H, W)`` input: each sample's channel over its
    ``D·H·W`` positions (PyTorch's ``InstanceNorm3d``). The math, options and differences
    from PyTorch are those of the shared base, below."""

    _axes = ("D", "H", "W")
    __doc__ = (__doc__ or "") + "\n" + (_InstanceNorm.__doc__ or "")
