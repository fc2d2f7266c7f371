"""Convolutions (Conv1D, Conv2D, Conv3D) as im2col plus one matrix multiply.

im2col copies every receptive field into a column, so the convolution becomes
``W_mat @ cols``: one BLAS call over the whole batch (and two in backward).

The input is first copied, zero-padded and channels-first, into ``xp (C, N, S)``:
one flat row per channel and image, ``S = Hp·Wp + kw - 1`` (the padded image,
then slack so that no window runs into the next image). Output ``(i, j)`` at
kernel offset ``(ki, kj)`` reads ``xp[c, n, (i·sh + ki)·Wp + j·sw + kj]``, so
``cols (C·kh·kw, N·Ho·Wo)`` is one copy from a strided view of ``xp`` (the
geometry, im2col and col2im are in :mod:`._im2col`, the layers' shared code in
:mod:`._conv`). Small layers (``(K + 1)·C_out`` up to 4,096 with a bias, ``K·C_out``
without, ``K = C·kh·kw``, such as a first layer on 1-3 channels) lay ``cols`` out by
sample instead, ``(N, K + 1, Ho·Wo)`` (the ones row with a bias), and run one product
per sample: ``y`` then lands in
NCHW with no transposing copy, and ``dW`` sums per-sample products of ``dy`` as it
comes.

With stride 1 the backward forms ``dx`` without ``dcols``: output ``(n, i, j)``
and the input it reads at kernel offset ``(ki, kj)`` are one flat position apart by
``ki·Wp + kj`` in ``xp``'s layout, so ``col2im(W_mat.T @ dy_mat)`` is ``kh·kw``
products ``W[:, :, ki, kj].T @ dy``, each added by BLAS (``beta = 1``, NumPy's own
OpenBLAS through :mod:`backprop._openblas`) into its shifted place in the ``dx``
accumulator (:func:`._im2col.col2im_products`). Other strides, and NumPy builds
without that BLAS, take the dcols product and col2im.

Larger stride-1 layers (those whose columns are not laid out by sample) skip that
per-image padding when it costs little: :mod:`._packed` puts the images back to back,
each axis only ``max(before, after)`` zeros apart (a row's zeros after it are the next
row's zeros before it), so im2col is ``K`` contiguous copies, and ``dy``, spread out once
in that layout, serves both the ``dW`` product and the per-offset ``dx`` products. The
outputs are then computed with the junk positions between them (14x14 images padded by
1 lie 15x15 apart: 1.15 positions per output); past 1.2 (small maps) the batch goes
inside the rows, where only the last axis' zeros separate outputs, and the route is taken
if that is at most 1.2. The
benchmark CNN's 32->64 layer (64x32x14x14) runs forward + backward in ~8.0 ms this way
against ~9.2 ms by im2col. Strided copies between these layouts move each contiguous row
as one raw element (:mod:`backprop._copy`).

A layer with groups skips im2col (:mod:`._grouped`; small ones that are not
depthwise keep it, having fewer NumPy calls that way): the padded input is split once
into ``prod(stride)`` phase planes, one flat row per channel holding the whole batch,
where every kernel offset reads one contiguous run; per offset, each group's product
is added in place (by BLAS, ``beta = 1``, when large), the weight gradient's summed
over cache-sized blocks of those runs, and a depthwise layer's
(``groups = in_channels = out_channels``) are one multiply-add per channel
(:mod:`._depthwise`). No ``prod(kernel)``-fold copy of the input is written.

A ``padding_mode`` other than zeros (PyTorch's reflect, replicate, circular) pads ``x``
itself with copies of its border values; everything above then runs on that padded
input as for a layer without padding, and the backward adds the padding's gradient
back onto the entries it copies (:mod:`._padding`).

``xp`` (its padding is written once), ``dy`` in ``xp``'s layout and the ``dx``
accumulator are workspaces that the layer keeps from step to step; the big per-step
arrays (``cols``, the products) are left to the allocator, which recycles them
within the step (keeping them too measured slower: more page faults in the other
layers).
Workspaces are scratch: never saved, copied or counted as parameters.

The bias rides in the products: ``cols`` gets one more row, of ones, and ``W_mat``
one more column, ``b``. The forward product then adds ``b`` (no pass over ``y``),
and the ``dW`` product's last row is ``db = Σ dy`` (no reduction over ``dy``), for
one extra row in a ``K``-row product (conv 1->32 3x3 at N=64: bias pass 0.28 ms and
db 0.09 ms saved, the products ~0.06 ms longer).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._conv import _Conv


class Conv2D(_Conv):
    """2-D convolution (cross-correlation, as in PyTorch) on ``NCHW`` input.

    ::

        Forward:   cols = im2col(x)                 x (N, C_in, H, W), cols (C_in·kh·kw, N·Ho·Wo)
                   y = (W_mat @ cols + b[:, None])  W_mat = W.reshape(C_out, C_in·kh·kw)
                       .reshape(C_out, N, Ho, Wo).transpose(1, 0, 2, 3)     y (N, C_out, Ho, Wo)
        Backward:  dy_mat = dy.transpose(1, 0, 2, 3).reshape(C_out, N·Ho·Wo)
                   dW = (dy_mat @ cols.T).reshape(W.shape)     db = dy.sum((0, 2, 3))
                   dx = col2im(W_mat.T @ dy_mat)
        where      Ho = (H + zh - dh·(kh - 1) - 1) // sh + 1   (Wo alike),
                   zh = 2·ph zeros per axis (dh·(kh - 1) for 'same', which also fits even k),
                   dh = the dilation (1: adjacent taps)
        Cache:     cache["cols"] is cols in the code's layout (a row of ones for b; by sample,
                   or packed with junk columns; with groups or a 1x1 kernel, the (padded)
                   input itself): see below and groups for getting cols back
        Groups:    g > 1 splits the channels into g blocks, each its own convolution:
                   y[:, block j of C_out] = conv(x[:, block j of C_in], W[block j]),
                   W (C_out, C_in/g, kh, kw); the products are stacked per block:
                   y_j = W_mat_j @ cols_j,   dW_j = dy_mat_j @ cols_j.T,
                   dcols_j = W_mat_j.T @ dy_mat_j   (cols_j: block j's rows of cols)
        Modes:     padding_mode 'reflect', 'replicate' or 'circular' pads with copies of x's
                   border values instead of zeros: xp = np.pad(x, ..., mode='reflect',
                   'edge' or 'wrap'), then the above with no padding on xp; backward:
                   dxp as above, then dx = fold(dxp): each padded entry's gradient is added
                   back onto the entry of x it copies (see :mod:`._padding`)

    In the code (one group) ``+ b`` and ``db`` come out of the products: ``cols``
    carries a last row of ones and ``W_mat`` a last column ``b``, so
    ``[W_mat | b] @ cols`` adds the bias and the last row of ``cols @ dy_mat.T`` is ``db``.

    The cache ``layer._cols`` (after a training forward) holds those columns with the
    row of ones when there is a bias, in one of three layouts: ``(K + 1, N·Ho·Wo)`` as
    above (``K = C_in·kh·kw``), or, for small layers (``(K + 1)·C_out <= 4096``, ``K·C_out``
    without a bias), by sample, ``(N, K + 1, Ho·Wo)``, sample ``n``'s columns in
    ``_cols[n]``. The formulas' ``cols`` is ``c[:K]`` or
    ``c[:, :K].transpose(1, 0, 2).reshape(K, -1)`` for ``c = layer._cols``. Larger
    stride-1 layers whose images pack with little junk (:mod:`._packed`, e.g. 32 -> 64
    channels on 14x14) hold ``(K + 1, span)`` instead: the columns of the images packed
    back to back, with junk columns between the outputs (``span > N·Ho·Wo``). A small 1x1
    layer (no stride, padding or groups) caches ``x`` itself as ``(N, C_in, Ho·Wo)``,
    without the row of ones: its bias is added and summed apart.

    ``col2im`` is the adjoint of ``im2col``: each column entry is added back to
    the input pixel it was copied from. With stride 1 the code adds, for each
    kernel offset, ``W[:, :, ki, kj].T @ dy`` into ``dx`` shifted by that offset:
    the same sum without the ``(C_in·kh·kw, N·Ho·Wo)`` array ``W_mat.T @ dy_mat``
    (see the module docstring). When the input needs no gradient
    (``model.backward(dy, input_grad=False)``, as ``fit`` does), the first layer skips
    ``dx`` (:meth:`backward_params`).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``kh`` and ``kw``: an int or a pair.
        stride: Step between windows: an int or a pair (default 1).
        padding: Zeros (or what ``padding_mode`` says) added on both sides of each
            spatial axis: an int, a pair, ``'valid'`` (0) or ``'same'`` (output size =
            input size; stride 1 only; ``d·(k - 1)`` zeros per axis, half (rounded
            down) before and the rest after, as in PyTorch: one more zero after when
            ``d·(k - 1)`` is odd, as for an even kernel without dilation).
        dilation: Spacing between the kernel's taps: an int or a pair (default 1;
            PyTorch's ``dilation``). Row ``(c, ki, kj)`` of ``cols`` then reads the
            input at ``(i·sh + ki·dh, j·sw + kj·dw)`` of the padded image.
        groups: Blocks of channels convolved separately (default 1; PyTorch's
            ``groups``; ``groups = in_channels`` is a depthwise convolution). Both
            channel counts must divide by it. With groups no columns are built
            (see :mod:`._grouped`; below ``N·Ho·Wo·C_in = 131,072`` a layer that is
            not depthwise keeps im2col, with ``_cols`` ``(K, N·Ho·Wo)`` without the
            row of ones): the bias is added in the copy out of ``y``, and ``_cols``
            is the zero-padded input split into its phase planes, ``(sh·sw, C_in,
            N·L)`` with ``L = ceil(Hp / sh)·ceil(Wp / sw)`` (stride 1: the padded
            input itself, one flat row per channel).
        bias: Learn ``b`` (default True).
        padding_mode: What the padding holds, as PyTorch's ``padding_mode``: ``'zeros'``
            (default), ``'reflect'`` (the input mirrored at its edge, the edge itself
            not repeated: ``[1 2 3]`` padded by 2 is ``3 2 [1 2 3] 2 1``; each padding
            must be smaller than the input), ``'replicate'`` (the edge value repeated:
            ``1 1 [1 2 3] 3 3``) or ``'circular'`` (the input wrapped around:
            ``2 3 [1 2 3] 1 2``; each padding at most the input size). With a mode
            other than zeros the caches hold the padded input's columns (or, on the
            grouped and 1x1 routes, the padded input itself or its phase planes), as
            for a layer without padding.
        init: Weight initializer; default ``"he_uniform"``, U(±sqrt(6 / fan_in))
            with ``fan_in = (C_in / groups)·kh·kw``, suited to the ReLU that usually follows
            (PyTorch's default is the narrower U(±1/sqrt(fan_in))).
        bias_init: Bias initializer (default zeros).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights.

    Raises:
        ValueError: The input has the wrong channel count, is smaller than the kernel
            after padding, or too small for the padding mode (reflect, circular).
    """

    _d = 2
    _axes = ("H", "W")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        init: Any = "he_uniform",
        bias_init: Any = "zeros",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias=bias, padding_mode=padding_mode, init=init,
                         bias_init=bias_init, dtype=dtype, rng=rng)


class Conv1D(_Conv):
    """1-D convolution (cross-correlation, as in PyTorch) on ``NCL`` input.

    ::

        Forward:   cols = im2col(x)                 x (N, C_in, L), cols (C_in·k, N·Lo)
                   y = (W_mat @ cols + b[:, None])  W_mat = W.reshape(C_out, C_in·k)
                       .reshape(C_out, N, Lo).transpose(1, 0, 2)               y (N, C_out, Lo)
        Backward:  dy_mat = dy.transpose(1, 0, 2).reshape(C_out, N·Lo)
                   dW = (dy_mat @ cols.T).reshape(W.shape)     db = dy.sum((0, 2))
                   dx = col2im(W_mat.T @ dy_mat)
        where      Lo = (L + z - d·(k - 1) - 1) // stride + 1,   d = dilation,
                   z = 2·padding zeros (d·(k - 1) for 'same')
        Cache:     cache["cols"] is cols in the code's layout (see Conv2D: a row of ones for
                   b; by sample, or packed with junk columns; with groups or a 1x1 kernel,
                   the (padded) input itself)
        Modes:     padding_mode 'reflect', 'replicate' or 'circular': xp = np.pad(x, ...,
                   mode='reflect', 'edge' or 'wrap') instead of zeros, the above unpadded
                   on xp, and dx = fold(dxp): each padded entry's gradient added back onto
                   the entry of x it copies

    The same code as :class:`Conv2D` with one spatial axis (groups too); the bias rides
    in the products the same way (a row of ones in ``cols``, a column ``b`` in ``W_mat``), and
    the cache ``layer._cols`` has the same three layouts, ``(K + 1, N·Lo)``, by sample
    ``(N, K + 1, Lo)``, or packed ``(K + 1, span)`` with junk columns, with ``K = C_in·k``
    (see :class:`Conv2D`, also for groups and their cache).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``k``.
        stride: Step between windows (default 1).
        padding: Zeros (or what ``padding_mode`` says) added on both ends: an int,
            ``'valid'`` (0) or ``'same'`` (output length = input length; stride 1 only;
            ``d·(k - 1)`` zeros, one more after than before when that is odd, as in
            PyTorch).
        dilation: Spacing between the kernel's taps (default 1; PyTorch's ``dilation``).
        groups: Blocks of channels convolved separately (default 1; see :class:`Conv2D`).
        bias: Learn ``b`` (default True).
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or
            ``'circular'``, as in PyTorch (see :class:`Conv2D`).
        init: Weight initializer; default ``"he_uniform"`` (see :class:`Conv2D`).
        bias_init: Bias initializer (default zeros).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights.

    Raises:
        ValueError: The input has the wrong channel count, is shorter than the kernel
            after padding, or too short for the padding mode (reflect, circular).
    """

    _d = 1
    _axes = ("L",)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | str = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        init: Any = "he_uniform",
        bias_init: Any = "zeros",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias=bias, padding_mode=padding_mode, init=init,
                         bias_init=bias_init, dtype=dtype, rng=rng)


class Conv3D(_Conv):
    """3-D convolution (cross-correlation, as in PyTorch) on ``NCDHW`` input (volumes,
    video clips).

    ::

        Forward:   cols = im2col(x)             x (N, C_in, D, H, W), cols (C_in·kd·kh·kw,
                                                N·Do·Ho·Wo)
                   y = (W_mat @ cols + b[:, None]).reshape(C_out, N, Do, Ho, Wo)
                       .transpose(1, 0, 2, 3, 4)                     y (N, C_out, Do, Ho, Wo)
        Backward:  dy_mat = dy.transpose(1, 0, 2, 3, 4).reshape(C_out, N·Do·Ho·Wo)
                   dW = (dy_mat @ cols.T).reshape(W.shape)    db = dy.sum((0, 2, 3, 4))
                   dx = col2im(W_mat.T @ dy_mat)
        where      Do = (D + z - d·(kd - 1) - 1) // sd + 1 per axis,  d = dilation,
                   z = 2·padding zeros (d·(k - 1) for 'same')
        Cache:     cache["cols"] is cols in the code's layout (see Conv2D)

    The same code as :class:`Conv2D` with three spatial axes (every route: columns by
    sample or as one matrix, ``dx`` by per-offset products, groups without im2col,
    ``padding_mode``); see :class:`Conv2D` for the caches and the arguments, here ints
    or triples.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``(kd, kh, kw)`` or one int.
        stride: Step between windows (default 1).
        padding: Zeros (or what ``padding_mode`` says) added on both sides of each axis:
            an int, a triple, ``'valid'`` or ``'same'`` (stride 1 only).
        dilation: Spacing between the kernel's taps (default 1).
        groups: Blocks of channels convolved separately (default 1).
        bias: Learn ``b`` (default True).
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or
            ``'circular'``, as PyTorch's.
        init: Weight initializer; default ``"he_uniform"`` (see :class:`Conv2D`).
        bias_init: Bias initializer (default zeros).
        dtype: Parameter and input dtype (default float32).
        rng: Generator or seed for the initial weights.

    Raises:
        ValueError: The input has the wrong channel count, or is smaller than the kernel
            after padding.
    """

    _d = 3
    _axes = ("D", "H", "W")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] | str = 0,
        dilation: int | tuple[int, int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        init: Any = "he_uniform",
        bias_init: Any = "zeros",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias=bias, padding_mode=padding_mode, init=init,
                         bias_init=bias_init, dtype=dtype, rng=rng)
