"""The normalization layers' sums and the ways through them: per-channel sums in either
order (rows first for long maps, samples first for short ones), row sums by BLAS
product, einsum or per-row dot, the backward built in the cache's buffer and the
inference output built in the centred input's. Each against float64 sums or PyTorch,
on shapes that take each way."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.layers import _sums

RNG = np.random.default_rng(0)


def _draw(shape, dtype=np.float32, shift=0.0):
    return (RNG.standard_normal(shape) + shift).astype(dtype)


# -- the sums ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 4, 1), (5, 3, 7), (2, 3, _sums.ROWS_FIRST - 1),
                                   (2, 3, _sums.ROWS_FIRST), (3, 2, 300), (0, 3, 200),
                                   (0, 3, 5), (4, 2, 0)])
@pytest.mark.parametrize("product", [False, True])
def test_batch_sum_in_either_order_is_the_float64_sum(shape, product):
    a, b = _draw(shape, shift=2.0), _draw(shape)
    want = (a.astype(np.float64) * (b if product else 1.0)).sum((0, 2))
    size = np.abs(a.astype(np.float64) * (b if product else 1.0)).sum((0, 2))
    got = _sums.batch_sum(a, b if product else None)
    assert got.dtype == np.float32 and got.shape == (shape[1],)
    assert np.all(np.abs(got - want) <= 1e-6 * size + 1e-30)
    out = np.full(shape[1], np.nan, np.float32)
    assert _sums.batch_sum(a, b if product else None, out=out) is out
    np.testing.assert_array_equal(out, got)


@pytest.mark.parametrize("d", [1, 2, _sums._DOT_MIN - 1, _sums._DOT_MIN, 300])
def test_row_sums_of_every_length_are_the_float64_sums(d):
    a, b, w = _draw((7, d), shift=1.0), _draw((7, d)), _draw(d)
    a64 = a.astype(np.float64)
    for got, want in [(_sums.row_sum(a), a64.sum(1)), (_sums.row_sum(a, b), (a64 * b).sum(1)),
                      (_sums.row_sum(a, w=w), a64 @ w),
                      (_sums.row_sum(a, lanes=True), a64.sum(1)),
                      (_sums.channel_rows(a.reshape(7, 1, d)).reshape(-1), a64.sum(1))]:
        assert got.dtype == np.float32 and got.shape == (7,)
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * d)


def test_weighted_and_product_sums_stay_accurate_past_a_block():
    """``w @ a`` down more than BLOCK rows and ``a @ w`` along more than BLOCK columns add
    their blocks' partial sums, as the plain sums do (one product: 6e-5 of the size)."""
    n = 2 * _sums.BLOCK + 5
    a, b = _draw((n, 2), shift=3.0), _draw((n, 2))
    w = np.abs(_draw(n)) + 1
    a64 = a.astype(np.float64)
    for got, want, size in [
        (_sums.column_sum(a, w=w), w @ a64, w @ np.abs(a64)),
        (_sums.column_sum(a, b=b), (a64 * b).sum(0), np.abs(a64 * b).sum(0)),
        (_sums.row_sum(a.T.copy(), w=w), w @ a64, w @ np.abs(a64)),
    ]:
        assert np.all(np.abs(got - want) < 1e-6 * size), (got, want)


# -- the layers on shapes that take each way, against PyTorch ---------------------------------

torch = pytest.importorskip("torch")


def _torch_pair(ours, theirs, shape, training=True, steps=2):
    """Outputs, dx, grads and buffers of ours and theirs (float64) over ``steps``
    training steps then one inference."""
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.tensor(RNG.uniform(0.5, 1.5, tuple(p.shape))))
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    for _ in range(steps):
        x, dy = RNG.standard_normal(shape) * 2 + 1, RNG.standard_normal(shape)
        theirs.train(training)
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(ours.forward(x, training=training), yt.detach().numpy(),
                                   atol=1e-12)
        if training:
            np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), atol=1e-12)
        theirs_grads = {"gamma": theirs.weight, "beta": getattr(theirs, "bias", None)}
        for name, g in ours.grads.items():
            np.testing.assert_allclose(g.reshape(-1), theirs_grads[name].grad.numpy().ravel(),
                                       rtol=1e-10, atol=1e-12)
        theirs.zero_grad()
        for name, buf in ours.buffers.items():
            if name != "num_batches_tracked":
                np.testing.assert_allclose(buf, getattr(theirs, name).numpy(), rtol=1e-12)
    theirs.eval()
    x = RNG.standard_normal(shape)
    with torch.no_grad():
        np.testing.assert_allclose(ours.forward(x), theirs(torch.tensor(x)).numpy(), atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 4), (4, 3, 5), (3, 2, 12, 12), (2, 3, 300)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("frozen", [False, True])
def test_batchnorm_matches_torch_on_short_and_long_maps(shape, affine, frozen):
    c = shape[1]
    theirs = (torch.nn.BatchNorm1d if len(shape) < 4 else torch.nn.BatchNorm2d)(
        c, affine=affine).double()
    with torch.no_grad():  # running statistics away from 0 and 1 for the frozen case
        theirs.running_mean.normal_()
        theirs.running_var.uniform_(0.5, 2.0)
    ours = bp.BatchNorm(c, affine=affine, use_running_stats=frozen, dtype=np.float64)
    if not frozen:
        _torch_pair(ours, theirs, shape)
        return
    theirs.eval()  # frozen statistics: PyTorch's eval-mode normalisation, with gradients
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    x, dy = RNG.standard_normal(shape) * 2 + 1, RNG.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.forward(x, training=True), yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), atol=1e-12)
    for name, p in (("gamma", theirs.weight), ("beta", theirs.bias)):
        if name in ours.grads:
            np.testing.assert_allclose(ours.grads[name], p.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var.numpy())


@pytest.mark.parametrize(("groups", "shape"), [(3, (3, 6, 10, 10)), (6, (4, 6)), (2, (4, 6)),
                                               (1, (2, 4, 40)), (4, (2, 4, 3))])
@pytest.mark.parametrize("affine", [True, False])
def test_groupnorm_matches_torch_on_short_and_long_groups(groups, shape, affine):
    theirs = torch.nn.GroupNorm(groups, shape[1], affine=affine).double()
    ours = bp.GroupNorm(groups, shape[1], affine=affine, dtype=np.float64)
    _torch_pair(ours, theirs, shape)


@pytest.mark.parametrize("shape", [(2, 3, 12, 12), (3, 2, 2, 1), (2, 3, 1, 70)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("running", [True, False])
def test_instancenorm_matches_torch_on_short_and_long_maps(shape, affine, running):
    theirs = torch.nn.InstanceNorm2d(shape[1], affine=affine,
                                     track_running_stats=running).double()
    ours = bp.InstanceNorm2D(shape[1], affine=affine, track_running_stats=running,
                             dtype=np.float64)
    _torch_pair(ours, theirs, shape)


@pytest.mark.parametrize(("normalized", "shape"), [(1, (3, 1)), (100, (4, 5, 100)),
                                                   ((3, 40), (2, 3, 40)), (7, (6, 7))])
@pytest.mark.parametrize("options", [{}, {"bias": False}, {"elementwise_affine": False}])
def test_layernorm_matches_torch_on_short_and_long_rows(normalized, shape, options):
    theirs = torch.nn.LayerNorm(normalized, **options).double()
    ours = bp.LayerNorm(normalized, dtype=np.float64, **options)
    _torch_pair(ours, theirs, shape)


@pytest.mark.parametrize(("make", "theirs"), [
    (lambda: bp.BatchNorm(16), lambda: torch.nn.BatchNorm2d(16)),
    (lambda: bp.GroupNorm(4, 16), lambda: torch.nn.GroupNorm(4, 16)),
    (lambda: bp.InstanceNorm2D(16, affine=True), lambda: torch.nn.InstanceNorm2d(16, affine=True)),
])
def test_float32_norms_on_a_large_map_match_torch(make, theirs):
    """32x28x28 maps: the rows-first sums (BLAS dots per row) in float32."""
    ours, theirs = make(), theirs()
    x, dy = _draw((8, 16, 28, 28), shift=1.0), _draw((8, 16, 28, 28))
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.forward(x, training=True), yt.detach().numpy(), atol=2e-5)
    dx = ours.backward(dy)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=2e-5)
    np.testing.assert_allclose(ours.grads["gamma"], theirs.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-3)
    np.testing.assert_allclose(ours.grads["beta"], theirs.bias.grad.numpy(), rtol=1e-4,
                               atol=1e-3)


# -- the in-place steps ---------------------------------------------------------------------

NORMS = [
    lambda: bp.BatchNorm(4), lambda: bp.BatchNorm(4, affine=False),
    lambda: bp.BatchNorm(4, track_running_stats=False),
    lambda: bp.BatchNorm(4, use_running_stats=True), lambda: bp.GroupNorm(2, 4),
    lambda: bp.GroupNorm(2, 4, affine=False), lambda: bp.InstanceNorm2D(4),
    lambda: bp.InstanceNorm2D(4, affine=True, track_running_stats=True),
    lambda: bp.LayerNorm(12), lambda: bp.LayerNorm(12, elementwise_affine=False),
]


@pytest.mark.parametrize("make", NORMS)
def test_backward_in_the_caches_buffer_leaves_inputs_and_repeats_exactly(make):
    """The backward overwrites its cache to build dx: x, dy and a later step are apart."""
    x, dy = _draw((3, 4, 2, 12), shift=1.0), _draw((3, 4, 2, 12))
    x0, dy0 = x.copy(), dy.copy()
    layer = make()
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    assert not np.shares_memory(dx, x) and not np.shares_memory(dx, dy)
    assert not np.shares_memory(dx, y)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
    again = make()
    np.testing.assert_array_equal(again.forward(x, training=True), y)
    np.testing.assert_array_equal(again.backward(dy), dx)
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(dy)


@pytest.mark.parametrize("make", NORMS)
def test_inference_builds_its_output_apart_from_the_input(make):
    x = _draw((3, 4, 2, 12), shift=1.0)
    x0 = x.copy()
    layer = make()
    layer.forward(x, training=True)  # running statistics away from 0 and 1
    first = layer.forward(x)
    second = layer.forward(x)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(first, second)
    assert not np.shares_memory(first, second) and not np.shares_memory(first, x)


@pytest.mark.parametrize("make", NORMS)
def test_norms_of_non_contiguous_input_equal_those_of_its_copy(make):
    """Up to rounding: a strided view's rows may be summed by other BLAS kernels."""
    base = _draw((3, 4, 2, 24), shift=1.0)
    x = base[..., ::2]  # strided
    dy = _draw((3, 4, 2, 24))[..., ::2]
    a, b = make(), make()
    close = {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(a.forward(x, training=True),
                               b.forward(np.ascontiguousarray(x), training=True), **close)
    np.testing.assert_allclose(a.backward(dy), b.backward(np.ascontiguousarray(dy)), **close)
    for name in a.grads:
        np.testing.assert_allclose(a.grads[name], b.grads[name], **close)


@pytest.mark.parametrize("make", NORMS)
@pytest.mark.parametrize("where", ["x", "dy"])
def test_a_nan_reaches_what_its_statistics_reach_and_no_further(make, where):
    """A NaN in x reaches the outputs and input gradients its statistics reach (its
    channel, group, instance or row); one in dy the input gradients of its statistics."""
    x, dy = _draw((3, 4, 2, 12), shift=1.0), _draw((3, 4, 2, 12))
    (x if where == "x" else dy)[1, 2, 1, 5] = np.nan
    layer = make()
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    reach = _nan_reach(layer, x.shape)
    frozen = getattr(layer, "use_running_stats", False)
    np.testing.assert_array_equal(np.isnan(y), reach if where == "x" else False)
    if frozen:  # dx = dy * gamma / sqrt(running_var + eps): elementwise
        reach = np.zeros(x.shape, bool)
        reach[1, 2, 1, 5] = where == "dy"
    np.testing.assert_array_equal(np.isnan(dx), reach)


def _nan_reach(layer, shape):
    """Where one NaN at [1, 2, 1, 5] reaches through the layer's statistics."""
    reach = np.zeros(shape, bool)
    if isinstance(layer, bp.BatchNorm) and layer.use_running_stats:
        reach[1, 2, 1, 5] = True
    elif isinstance(layer, bp.BatchNorm):
        reach[:, 2] = True
    elif isinstance(layer, bp.GroupNorm):
        reach[1, 2:4] = True
    elif isinstance(layer, bp.InstanceNorm2D):
        reach[1, 2] = True
    else:
        reach[1, 2, 1] = True
    return reach


@pytest.mark.parametrize("make", NORMS)
def test_the_cache_names_what_the_backward_takes_and_frees(make):
    """``xc = x - mu`` and ``1 / sqrt(var + eps)`` (BatchNorm: also which statistics), set
    by a training forward, all cleared by the backward, none kept by inference."""
    x = _draw((3, 4, 2, 12), shift=1.0)
    layer = make()
    layer.forward(x, training=True)
    assert {"xc", "inv_std"} <= set(layer.cache)
    assert all(v is not None for v in layer.cache.values())
    assert layer.cache["xc"].shape == x.shape
    layer.backward(_draw(x.shape))
    assert all(v is None for v in layer.cache.values())
    layer.forward(x)
    assert all(v is None for v in layer.cache.values())


def test_product_sums_without_vecdot_as_on_numpy_1(monkeypatch):
    """NumPy 1.x (pyproject allows >= 1.24) has no np.vecdot: the product sums then take
    einsum and still give the float64 sums."""
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal((5, 300)).astype(np.float32) for _ in range(2))
    with_vecdot = _sums.row_sum(a, b)
    monkeypatch.setattr(_sums, "_VECDOT", None)
    without = _sums.row_sum(a, b)
    want = (a.astype(np.float64) * b).sum(1)
    np.testing.assert_allclose(without, want, rtol=2e-6, atol=1e-5)
    np.testing.assert_allclose(with_vecdot, want, rtol=2e-6, atol=1e-5)


def test_lane_row_sums_honour_column_weights():
    """The einsum ("lanes") kernel of the row sums applies column weights too, as the
    BLAS kernel does."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 40))
    w = rng.standard_normal(40)
    np.testing.assert_allclose(_sums.row_sum(a, w=w, lanes=True), a @ w, rtol=1e-13)
    np.testing.assert_allclose(_sums.row_sum(a, lanes=True), a.sum(1), rtol=1e-13)
