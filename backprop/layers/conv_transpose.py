"""Transposed convolutions (ConvTranspose1D, 2D, 3D): a convolution run backwards.

A convolution with weights ``W (C_in, C_out/g, *k)`` turns ``C_out``-channel maps into
``C_in``-channel ones; its input gradient, ``col2im(W_mat.T @ dy_mat)``, turns ``C_in``
channels back into ``C_out``. That input gradient is the transposed convolution's
forward (PyTorch's ``ConvTranspose2d``, "deconvolution"): each input pixel stamps its
``W[c_in]`` kernel, scaled, onto the output at ``stride`` steps, overlaps adding up. Its
backward is then the convolution's forward of ``dy`` (``dx = W_mat @ im2col(dy)``) and
its ``dW`` the convolution's weight gradient with the roles of ``x`` and ``dy`` swapped.

So the machinery of :mod:`._im2col` serves as it is, with the roles swapped: the
:class:`._im2col._Geometry` is that of the convolution whose *input* is ``y`` (``(N, C_out,
*Ho)``, padded by ``padding`` into the flat buffer ``yp``) and whose *output* is ``x``'s
spatial size. Output ``(i, j)`` of that convolution, at kernel offset ``(ki, kj)``,
reads padded position ``(i·sh + ki·dh, j·sw + kj·dw)``, so the largest position read is
``(H - 1)·sh + dh·(kh - 1) = Ho + 2·ph - 1 - oph``: the last ``output_padding`` rows (and
columns) of the padded ``y`` are read by no window. Where they fall inside ``y`` rather
than in its padding (``output_padding > padding``), col2im leaves them zero and they hold
the bias alone, as in PyTorch.

``x`` is cached as ``x_mat (C_in, N·prod(H))``, the matrix both weight products need; the
columns are made anew in backward from ``dy`` (they are ``dy``'s, which the forward never
sees). With groups every product is a stack of the groups' blocks (one ``np.matmul``);
one group is the stack of one.

PyTorch's ``forward(x, output_size)`` is here as well: ``output_size`` picks that call's
``output_padding`` (``output_size`` minus the size without it, at most ``stride - 1``),
which the call's cache keeps for its backward; the layer's ``output_padding`` stays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._conv_transpose import _ConvTranspose


class ConvTranspose2D(_ConvTranspose):
    """2-D transposed convolution on ``NCHW`` input, as PyTorch's ``nn.ConvTranspose2d``.

    ::

        Forward:   x_mat = x.transpose(1, 0, 2, 3).reshape(C_in, N·H·W)     x (N, C_in, H, W)
                   cols = W_mat.T @ x_mat          W_mat = W.reshape(C_in, C_out·kh·kw),
                                                   cols (C_out·kh·kw, N·H·W)
                   y = col2im(cols) + b[:, None, None]                  y (N, C_out, Ho, Wo)
        Backward:  cols = im2col(dy)               (C_out·kh·kw, N·H·W): dy's windows
                   dx = (W_mat @ cols).reshape(C_in, N, H, W).transpose(1, 0, 2, 3)
                   dW = (x_mat @ cols.T).reshape(W.shape)     db = dy.sum((0, 2, 3))
        where      Ho = (H - 1)·sh - 2·ph + dh·(kh - 1) + oph + 1   (Wo alike),
                   col2im adds row (c, ki, kj), column (n, i, j) of cols to
                   y[n, c, i·sh + ki·dh - ph, j·sw + kj·dw - pw] (dropped outside y), and
                   im2col reads dy at those places (0 outside): the convolution's im2col
                   with y as its input, and col2im its adjoint
        Groups:    g > 1 splits the channels into g blocks, W (C_in, C_out/g, kh, kw):
                   W_mat_j = W_mat's block j of rows (C_in/g, C_out/g·kh·kw),
                   cols_j = W_mat_j.T @ x_mat_j,   dW_j = x_mat_j @ cols_j.T,
                   dx_mat_j = W_mat_j @ cols_j     (x_mat_j, cols_j: block j's rows)

    It is :class:`Conv2D`'s input gradient as a layer (see :mod:`.conv_transpose`): the
    ``dx`` of ``Conv2D(C_out, C_in, k, stride, padding, dilation, groups)`` on a ``y``-sized
    input, given ``x`` as its ``dy`` (that convolution's output is ``x``-sized, or longer by
    ``output_padding // stride`` where a dilation allows ``output_padding >= stride``: then
    ``x`` is the ``dy`` of its first ``H`` rows). ``W`` has that convolution's layout,
    PyTorch's ``(C_in, C_out/g, kh, kw)``, so a torch ``ConvTranspose2d``'s state dict
    loads with :func:`backprop.from_torch`. With ``stride > kernel`` the stamps leave
    gaps, and ``output_padding > padding`` leaves last rows (columns) that no input
    reaches: those outputs hold ``b`` alone. The cache ``layer._x_mat`` (after a training
    forward) is ``x_mat`` above, new, never a view of ``x``. PyTorch's ``forward(x,
    output_size)`` is offered too (also ``layer(x, output_size)``): ``output_size``, the
    spatial size ``(Ho, Wo)`` or a full shape, picks that call's ``output_padding``,
    ``Ho - min`` within ``[min, min + sh - 1]`` (``min``: ``Ho`` with ``oph = 0``), as
    PyTorch's does; the backward of the call uses it, the layer's ``output_padding``
    stays. :class:`Sequential` calls ``forward(x, training=...)`` without it: it is for
    direct calls, as the ``output_size`` of a U-Net's decoder that must match its skip.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``kh`` and ``kw``: an int or a pair.
        stride: Step between the stamps of neighbouring inputs: an int or a pair
            (default 1).
        padding: Rows (columns) cropped from both sides of the full output: an int or
            a pair (default 0): the padding of the convolution this layer undoes.
        output_padding: Rows (columns) added after the last, to pick one of the
            ``max(stride, dilation)`` output sizes whose convolution gives back the
            input's size: an int or a pair, each smaller than its axis's stride or its
            dilation (default 0; checked here, PyTorch checks it in forward).
        groups: Blocks of channels transposed-convolved separately (default 1; both
            channel counts must divide by it).
        bias: Learn ``b`` (default True).
        dilation: Spacing between the kernel's taps: an int or a pair (default 1).
        padding_mode: ``'zeros'`` only, PyTorch's only mode for transposed convolutions.
        init: Weight initializer; default ``"glorot_uniform"`` (Keras' for its
            ``Conv2DTranspose``), U(±sqrt(6 / (fan_in + fan_out))) with ``fan_in =
            (C_out / groups)·kh·kw`` and ``fan_out = C_in·kh·kw``, as
            :mod:`backprop.initializers` (and PyTorch) read them from ``W``'s layout.
            Not ``"he_uniform"`` as the other layers: a transposed convolution is often
            a decoder's linear output, where He's ReLU factor and a fan_in of a few
            output channels gave a digits autoencoder 20-50x PyTorch's reconstruction
            error (glorot and PyTorch's narrower U(±1/sqrt(fan_in)),
            ``"torch_uniform"``, both match PyTorch there).
        bias_init: Bias initializer (default zeros).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights.

    Raises:
        ValueError: A bad argument (``output_padding`` not below stride or dilation,
            channels not divisible by ``groups``, a ``padding_mode`` other than zeros);
            an input with the wrong channel count (or channels last), or so small that
            the output would be empty; an ``output_size`` outside the sizes ``stride``
            allows.
    """

    _d = 2
    _axes = ("H", "W")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int] = 1,
        padding_mode: str = "zeros",
        *,
        init: Any = "glorot_uniform",
        bias_init: Any = "zeros",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding,
                         output_padding, groups, bias, dilation, padding_mode, init=init,
                         bias_init=bias_init, dtype=dtype, rng=rng)


class ConvTranspose1D(_ConvTranspose):
    """1-D transposed convolution on ``NCL`` input, as PyTorch's ``nn.ConvTranspose1d``.

    ::

        Forward:   x_mat = x.transpose(1, 0, 2).reshape(C_in, N·L)          x (N, C_in, L)
                   cols = W_mat.T @ x_mat          W_mat = W.reshape(C_in, C_out·k)
                   y = col2im(cols) + b[:, None]   cols (C_out·k, N·L), y (N, C_out, Lo)
        Backward:  cols = im2col(dy)               (C_out·k, N·L): dy's windows
                   dx = (W_mat @ cols).reshape(C_in, N, L).transpose(1, 0, 2)
                   dW = (x_mat @ cols.T).reshape(W.shape)     db = dy.sum((0, 2))
        where      Lo = (L - 1)·stride - 2·padding + d·(k - 1) + output_padding + 1,
                   col2im adds row (c, o), column (n, i) of cols to
                   y[n, c, i·stride + o·d - padding] (d = dilation; dropped outside y)

    The same code as :class:`ConvTranspose2D` with one spatial axis (groups too);
    ``W (C_in, C_out/groups, k)``, PyTorch's layout.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``k``.
        stride: Step between the stamps of neighbouring inputs (default 1).
        padding: Entries cropped from both ends of the full output (default 0).
        output_padding: Entries added after the last, smaller than stride or dilation
            (default 0; see :class:`ConvTranspose2D`).
        groups: Blocks of channels transposed-convolved separately (default 1).
        bias: Learn ``b`` (default True).
        dilation: Spacing between the kernel's taps (default 1).
        padding_mode: ``'zeros'`` only, PyTorch's only mode for transposed convolutions.
        init: Weight initializer; default ``"glorot_uniform"`` (see
            :class:`ConvTranspose2D`).
        bias_init: Bias initializer (default zeros).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights.

    Raises:
        ValueError: A bad argument (see :class:`ConvTranspose2D`); an input with the
            wrong channel count (or channels last), or so short that the output would
            be empty.
    """

    _d = 1
    _axes = ("L",)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        output_padding: int = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int = 1,
        padding_mode: str = "zeros",
        *,
        init: Any = "glorot_uniform",
        bias_init: Any = "zeros",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding,
                         output_padding, groups, bias, dilation, padding_mode, init=init,
                         bias_init=bias_init, dtype=dtype, rng=rng)


class ConvTranspose3D(_ConvTranspose):
    """3-D transposed convolution on ``NCDHW`` input, as PyTorch's ``nn.ConvTranspose3d``.

    ::

        Forward:   x_mat = x.transpose(1, 0, 2, 3, 4).reshape(C_in, N·D·H·W)
                                                   x (N, C_in, D, H, W)
                   cols = W_mat.T @ x_mat          W_mat = W.reshape(C_in, C_out·kd·kh·kw),
                                                   cols (C_out·kd·kh·kw, N·D·H·W)
                   y = col2im(cols) + b[:, None, None, None]     y (N, C_out, Do, Ho, Wo)
        Backward:  cols = im2col(dy)               (C_out·kd·kh·kw, N·D·H·W): dy's windows
                   dx = (W_mat @ cols).reshape(C_in, N, D, H, W).transpose(1, 0, 2, 3, 4)
                   dW = (x_mat @ cols.T).reshape(W.shape)     db = dy.sum((0, 2, 3, 4))
        where      Do = (D - 1)·sd - 2·pd + dd·(kd - 1) + opd + 1   (Ho, Wo alike),
                   col2im adds row (c, a, b, e), column (n, i, j, l) of cols to
                   y[n, c, i·sd + a·dd - pd, j·sh + b·dh - ph, l·sw + e·dw - pw]
                   (dropped outside y)

    The same code as :class:`ConvTranspose2D` with three spatial axes (groups, dilation,
    ``output_padding``, ``forward(x, output_size)`` too); ``W (C_in, C_out/groups, kd,
    kh, kw)``, PyTorch's layout, so a torch ``ConvTranspose3d``'s state dict loads with
    :func:`backprop.from_torch`. Arguments are ints or triples.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``(kd, kh, kw)`` or one int.
        stride: Step between the stamps of neighbouring inputs (default 1).
        padding: Entries cropped from both ends of each axis of the full output
            (default 0).
        output_padding: Entries added after the last, smaller than stride or dilation
            (default 0; see :class:`ConvTranspose2D`).
        groups: Blocks of channels transposed-convolved separately (default 1).
        bias: Learn ``b`` (default True).
        dilation: Spacing between the kernel's taps (default 1).
        padding_mode: ``'zeros'`` only, PyTorch's only mode for transposed convolutions.
        init: Weight initializer; default ``"glorot_uniform"`` (see
            :class:`ConvTranspose2D`).
        bias_init: Bias initializer (default zeros).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights.

    Raises:
        ValueError: A bad argument (see :class:`ConvTranspose2D`); an input with the
            wrong rank or channel count (or channels last), or so small that the output
            would be empty; an ``output_size`` outside the sizes ``stride`` allows.
    """

    _d = 3
    _axes = ("D", "H", "W")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
        output_padding: int | tuple[int, int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int, int] = 1,
        padding_mode: str = "zeros",
        *,
        init: Any = "glorot_uniform",
        bias_init: Any = "zeros",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding,
                         output_padding, groups, bias, dilation, padding_mode, init=init,
                         bias_init=bias_init, dtype=dtype, rng=rng)
