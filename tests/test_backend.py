from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import _openblas, backend


def test_special_functions_keep_float32():
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    assert backend.erf(x).dtype == np.float32 and backend.expit(x).dtype == np.float32


def test_expit_is_accurate_to_a_few_ulp_across_the_whole_range():
    for dtype, ulps in ((np.float32, 3), (np.float64, 3)):
        x = np.linspace(-1000, 1000, 20001).astype(dtype)
        exact = 1 / (1 + np.exp(-x.astype(np.longdouble)))
        normal = exact > np.finfo(dtype).tiny
        y = backend.expit(x)
        assert y.dtype == dtype
        rel = np.abs(y[normal] - exact[normal]) / exact[normal]
        assert rel.max() <= ulps * np.finfo(dtype).eps
        assert y[0] == 0 and y[-1] == 1


@pytest.mark.parametrize("dtype, ulps, worst", [(np.float32, 3.5, -16.635921),
                                                (np.float64, 2.4, -36.74169649999999)])
def test_expit_keeps_its_documented_ulp_bound(dtype, ulps, worst):
    low = -103.9 if dtype == np.float32 else -745.0  # where results stop being normal
    x = np.append(np.linspace(low, 89.0, 400_001), worst).astype(dtype)
    exact = 1 / (1 + np.exp(-x.astype(np.longdouble)))
    normal = exact > np.finfo(dtype).tiny
    ulp = np.spacing(exact[normal].astype(dtype)).astype(np.longdouble)
    err = np.abs(backend.expit(x)[normal] - exact[normal]) / ulp
    if dtype == np.float64 and np.lib.NumpyVersion(np.__version__) < "2.0.0":
        assert err.max() <= 2.6  # NumPy 1.24's AVX-512 exp: 2.55 ulp (a Zen 5 machine)
        return
    assert err.max() <= ulps and err[-1] > ulps - 0.2  # the bound, reached at its worst point


def _axpby_cases():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        chunk = backend._BLAS_CHUNK
        for n in (1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5):
            yield rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    # 2-D contiguous (per-parameter optimizers) and strided views (the NumPy route)
    yield rng.standard_normal((70, 300)).astype(np.float32), rng.standard_normal((70, 300)) \
        .astype(np.float32)
    big = rng.standard_normal((40, 600)).astype(np.float32)
    yield big[:, ::2], rng.standard_normal((40, 300)).astype(np.float32)


def _force_route(monkeypatch, route):
    """Route 1: NumPy's OpenBLAS through ctypes; 2: SciPy's chunks; 3: NumPy ufuncs."""
    if route >= 2:
        monkeypatch.setattr(backend, "_numpy_blas_for", lambda x, y: None)
    if route == 3:
        monkeypatch.setattr(backend, "_blas_for", lambda x, y: None)


@pytest.mark.parametrize("route", [1, 2, 3])
def test_axpby_matches_the_formula_in_place_on_every_route(monkeypatch, route):
    _force_route(monkeypatch, route)
    for x, y in _axpby_cases():
        for alpha, beta in ((1.0, 1.0), (-0.01, 1.0), (0.1, 0.9), (1.0, 0.5)):
            yy = y.copy()
            expected = alpha * x.astype(np.float64) + beta * y.astype(np.float64)
            x_before = x.copy()
            address = yy.__array_interface__["data"][0]
            backend.axpby(alpha, x, beta, yy, np.empty_like(yy))
            assert yy.__array_interface__["data"][0] == address and yy.dtype == y.dtype
            tol = 4 * np.finfo(y.dtype).eps * (np.abs(expected).max() + 1)
            np.testing.assert_allclose(yy, expected, rtol=0, atol=tol)
            assert np.array_equal(x, x_before)  # x is read only


def test_axpby_takes_the_blas_route_only_for_contiguous_same_dtype_float_arrays():
    a32, a64 = np.ones(10, np.float32), np.ones(10, np.float64)
    assert backend._blas_for(a32, a32.copy()) is not None
    assert backend._blas_for(a64, a64.copy()) is not None
    assert backend._blas_for(a32, a64) is None                       # mixed dtypes
    assert backend._blas_for(np.ones(20, np.float32)[::2], a32) is None  # strided
    assert backend._blas_for(np.ones(10, np.float16), np.ones(10, np.float16)) is None
    frozen = a32.copy()
    frozen.flags.writeable = False
    assert backend._blas_for(a32, frozen) is None


def test_all_finite_flags_any_nan_or_inf_and_only_those():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        a = rng.standard_normal(50_000).astype(dtype)
        assert backend.all_finite(a) and backend.all_finite(a.reshape(100, 500))
        huge = np.full(10, np.finfo(dtype).max / 2, dtype)  # squares overflow, values are fine
        assert backend.all_finite(huge)
        for bad in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b[12_345] = bad
            assert not backend.all_finite(b)


def test_relu_matches_numpy_maximum_bit_for_bit_on_every_route():
    rng = np.random.default_rng(0)
    special = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, 1e-45, -1e-45, 3e38])
    for dtype in (np.float32, np.float64):
        row = backend._RELU_ROW  # below one row: the scalar route; above: rows + tail
        for n in (7, row - 1, row, row + 1, 3 * row + 5):
            x = rng.standard_normal(n).astype(dtype)
            x[: min(n, special.size)] = special[: min(n, special.size)]
            x[-min(n, special.size):] = special[: min(n, special.size)]  # and in the tail
            for arr in (x, x.reshape(1, -1), x[::2], x.reshape(-1, 1)[:, 0]):
                y = backend.relu(arr)
                want = np.maximum(arr, 0)
                assert y.dtype == want.dtype and y.shape == arr.shape
                assert y is not arr and not np.shares_memory(y, arr)
                np.testing.assert_array_equal(y, want)
                np.testing.assert_array_equal(np.signbit(y), np.signbit(want))
    big = rng.standard_normal((4, 3, 40, 40)).astype(np.float32)
    big[1, 2, 3] = np.nan  # one inside the rows
    np.testing.assert_array_equal(backend.relu(big), np.maximum(big, 0))


@pytest.mark.parametrize("route", [1, 2, 3])
def test_axpby_axpy_is_axpby_then_axpy_bit_for_bit_on_every_route(monkeypatch, route):
    _force_route(monkeypatch, route)
    for x, y in _axpby_cases():
        z = np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype)
        for alpha, beta, gamma in ((1.0, 0.9, -0.01), (0.5, 1.0, 2.0), (1.0, 0.0, -1.0)):
            y1, z1, y2, z2 = y.copy(), z.copy(), y.copy(), z.copy()
            backend.axpby(alpha, x, beta, y1, np.empty_like(y1))
            backend.axpby(gamma, y1, 1.0, z1, np.empty_like(z1))
            address = y2.__array_interface__["data"][0], z2.__array_interface__["data"][0]
            backend.axpby_axpy(alpha, x, beta, y2, gamma, z2, np.empty_like(y2))
            assert (y2.__array_interface__["data"][0], z2.__array_interface__["data"][0]) == address
            np.testing.assert_array_equal(y2, y1)
            np.testing.assert_array_equal(z2, z1)
            assert not np.array_equal(z2, z)  # z really moved


def test_relu_grad_is_dy_times_mask_bit_for_bit():
    rng = np.random.default_rng(0)
    special = np.array([np.nan, np.inf, -0.0, 0.0, 1e-45, 3e38, 2.0])  # ReLU outputs
    for dtype in (np.float32, np.float64):
        y = np.maximum(rng.standard_normal((6, 50)), 0).astype(dtype)
        y[0, :special.size] = special
        dy = rng.standard_normal((6, 50)).astype(dtype)
        dy[1, :special.size] = special  # NaN/inf/-0 gradients meet every mask value
        dy[0, :special.size] = -1.0     # -0 where the mask is 0
        for a, b in ((dy, y), (dy.T, y.T), (dy[:, ::2], y[:, ::2]), (dy, np.asfortranarray(y))):
            with np.errstate(invalid="ignore"):  # inf * 0, as the plain formula does
                got = backend.relu_grad(a, b)
                want = a * ((b > 0) | np.isnan(b))
            assert got.dtype == want.dtype and got.shape == want.shape
            assert not np.shares_memory(got, a)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        with np.errstate(invalid="ignore"):
            assert backend.relu_grad(dy, y)[0, 0] == -1.0  # y = NaN passes dy (PyTorch)


def test_relu_backward_at_nan_matches_torch():
    torch = pytest.importorskip("torch")
    import backprop as bp

    x = np.array([[np.nan, -1.0, 0.0, 2.0]])
    relu = bp.ReLU(dtype=np.float64)
    relu.forward(x, training=True)
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt).backward(torch.full((1, 4), 3.0, dtype=torch.float64))
    np.testing.assert_array_equal(relu.backward(np.full((1, 4), 3.0)), xt.grad.numpy())


def test_elu_at_nan_gives_nan_and_passes_dy_like_torch():
    torch = pytest.importorskip("torch")
    import backprop as bp

    x = np.array([[np.nan, -1.0, -0.0, 0.0, 2.0]])
    for alpha in (0.5, 1.0, 2.0):
        elu = bp.ELU(alpha, dtype=np.float64)
        y = elu.forward(x, training=True)
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.functional.elu(xt, alpha)
        yt.backward(torch.full((1, 5), 3.0, dtype=torch.float64))
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_allclose(elu.backward(np.full((1, 5), 3.0)), xt.grad.numpy(),
                                   rtol=1e-15)


def _numpy_blas_or_skip():
    a = np.ones(4, np.float32)
    if backend._numpy_blas_for(a, a.copy()) is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS with cblas_?axpby (route 2 is used)")


def test_numpy_openblas_route_agrees_with_the_scipy_route_to_the_rounding(
        monkeypatch):
    """Routes 1 and 2 are interchangeable: each run repeats its own bits, and every route
    and thread count agrees with route 1 on one thread within the rounding of each
    two-term sum (OpenBLAS 0.3.31's ?axpy rounds the tail of each thread's share
    without a fused multiply-add; NumPy's and SciPy's wheels may ship different OpenBLAS
    versions, whose AVX-512 kernels differ too: NumPy 1.24 beside SciPy 1.10 on a Zen 4,
    3 ulp where ``alpha·x + beta·y`` cancels)."""
    _numpy_blas_or_skip()
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        for n in (1, 37, 10_001, 200_003):
            x, y0, z0 = (rng.standard_normal(n).astype(dtype) for _ in range(3))
            for alpha, beta, gamma in ((1.0, 0.9, -0.01), (0.3, 1.0, 2.0), (0.7, 0.0, -1.0),
                                       (0.0, 0.5, 1.0)):
                results = {}
                for route, threads in ((1, 1), (2, 1), (2, 2), (1, 2), (1, 2)):
                    with monkeypatch.context() as m, threadpoolctl.threadpool_limits(threads):
                        if route == 2:
                            m.setattr(backend, "_numpy_blas_for", lambda x, y: None)
                        y, z = y0.copy(), z0.copy()
                        backend.axpby_axpy(alpha, x, beta, y, gamma, z, np.empty_like(y))
                        backend.axpby(alpha, x, beta, z, np.empty_like(z))
                        results.setdefault((route, threads), []).append((y, z))
                (y1, z1), = results[1, 1]
                for runs in results.values():
                    for y, z in runs:
                        np.testing.assert_array_equal(y, runs[0][0])
                        np.testing.assert_array_equal(z, runs[0][1])
                        eps = np.finfo(dtype).eps  # each sum's terms bound its rounding
                        terms = abs(alpha) * np.abs(x) + abs(beta) * np.abs(y0)
                        assert np.all(np.abs(y - y1) <= 2 * eps * terms)
                        # z = z + gamma * y takes y's error along
                        np.testing.assert_allclose(z, z1, rtol=4 * eps,
                                                   atol=8 * eps * np.abs(y1).max())


def test_numpy_openblas_route_is_refused_when_its_self_test_fails():
    def wrong_axpby(x, y, alpha, beta):  # e.g. a symbol guessed with the wrong int width
        y *= beta

    def axpy(x, y, alpha):
        y += alpha * x

    def axpby(x, y, alpha, beta):
        y *= beta
        y += alpha * x

    for dtype in (np.float32, np.float64):
        assert _openblas.axpby_self_test(axpby, axpy, dtype)
        assert not _openblas.axpby_self_test(wrong_axpby, axpy, dtype)
        assert not _openblas.axpby_self_test(axpby, lambda x, y, alpha: None, dtype)


def test_numpy_openblas_route_only_for_arrays_the_blas_routes_accept():
    _numpy_blas_or_skip()
    a32 = np.ones(10, np.float32)
    assert backend._numpy_blas_for(a32, a32.copy()) is not None
    assert backend._numpy_blas_for(a32, a32.astype(np.float64)) is None
    assert backend._numpy_blas_for(np.ones(20, np.float32)[::2], a32) is None
    frozen = a32.copy()
    frozen.flags.writeable = False
    assert backend._numpy_blas_for(a32, frozen) is None


def test_matmul_add_adds_the_product_into_strided_views_in_place():
    for dtype in (np.float32, np.float64):
        add = _openblas.matmul_add(dtype)
        if add is None:
            pytest.skip("NumPy's BLAS here has no cblas_?gemm")
        rng = np.random.default_rng(7)
        a = rng.standard_normal((5, 7)).astype(dtype)
        wide_b = rng.standard_normal((7, 40)).astype(dtype)
        wide_out = rng.standard_normal((5, 50)).astype(dtype)
        want = wide_out.copy()
        want[:, 10:33] += a @ wide_b[:, 3:26]
        add(a, wide_b[:, 3:26], wide_out[:, 10:33])
        tol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(wide_out, want, rtol=tol, atol=tol)
        np.testing.assert_array_equal(wide_out[:, :10], want[:, :10])  # outside: untouched
        np.testing.assert_array_equal(wide_out[:, 33:], want[:, 33:])


def test_matmul_add_refuses_arrays_blas_cannot_take():
    add = _openblas.matmul_add(np.float64)
    if add is None:
        pytest.skip("NumPy's BLAS here has no cblas_?gemm")
    a, b, out = np.ones((2, 3)), np.ones((3, 4)), np.zeros((2, 4))
    frozen = out.copy()
    frozen.flags.writeable = False
    for args in ((a, b, np.zeros((2, 5))),            # wrong out shape
                 (a, np.ones((4, 4)), out),           # inner sizes differ
                 (a.astype(np.float32), b, out),      # wrong dtype
                 (a, np.ones((3, 8))[:, ::2], out),   # rows not contiguous
                 (a, b.T.copy().T, out),              # column-major
                 (a, b, frozen)):
        with pytest.raises(ValueError, match="matmul_add"):
            add(*args)
    np.testing.assert_array_equal(out, 0)


def test_matmul_add_is_refused_when_its_self_test_fails():
    def wrong(a, b, out):  # e.g. beta taken as 0: overwrites instead of adding
        out[...] = a @ b

    def right(a, b, out):
        out += a @ b

    for dtype in (np.float32, np.float64):
        assert _openblas.gemm_self_test(right, dtype)
        assert not _openblas.gemm_self_test(wrong, dtype)
        assert _openblas.matmul_add(np.int64) is None


def test_all_finite_finds_a_bad_value_in_any_chunk_and_keeps_huge_finite_ones():
    a = np.ones(3 * (1 << 20) + 5, np.float32)
    assert backend.all_finite(a)
    for where in (0, (1 << 20) + 3, a.size - 1):
        for bad in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b[where] = bad
            assert not backend.all_finite(b)
    assert backend.all_finite(np.full(5000, 3e38, np.float32))  # the sum overflows; values don't


def test_float32_erf_is_within_half_a_micro_of_the_float64_one():
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(200_000) * 3, np.linspace(-6, 6, 100_001),
                        [0.0, -0.0, 1e-30, -1e-30, 3e38, -3e38]]).astype(np.float32)
    got = backend.erf(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, special.erf(x.astype(np.float64)), rtol=0, atol=5e-7)
    assert np.all(np.abs(got) <= 1)  # never past ±1
    assert np.array_equal(np.sign(got), np.sign(x))  # odd, and exact zeros stay zeros
    edge = backend.erf(np.float32([np.nan, np.inf, -np.inf]))
    assert np.isnan(edge[0]) and edge[1] == 1 and edge[2] == -1
    x64 = x.astype(np.float64)
    assert np.array_equal(backend.erf(x64), special.erf(x64))  # float64: SciPy's, exactly


def test_float32_gelu_matches_torch_float32():
    torch = pytest.importorskip("torch")
    x = (np.random.default_rng(0).standard_normal((64, 50)) * 4).astype(np.float32)
    layer = bp.GELU()
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(x))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt)
    yt.backward(torch.ones_like(xt))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize(("ours", "theirs"), [
    (lambda dt: bp.SiLU(dtype=dt), lambda t: t.nn.SiLU()),
    (lambda dt: bp.Softplus(dtype=dt), lambda t: t.nn.Softplus()),
    (lambda dt: bp.Softplus(2.0, 5.0, dtype=dt), lambda t: t.nn.Softplus(2.0, 5.0)),
    (lambda dt: bp.Softplus(0.5, dtype=dt), lambda t: t.nn.Softplus(0.5)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silu_and_softplus_match_torch_across_their_range(ours, theirs, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((40, 9)) * 10).astype(dtype)
    x[0, :6] = [0.0, 25.0, -25.0, 100.0, -100.0, 20.0]  # past the threshold, both signs
    dy = rng.standard_normal(x.shape).astype(dtype)
    layer = ours(dtype)
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(torch)(xt)
    yt.backward(torch.tensor(dy))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize(("num_parameters", "shape"), [(1, (6, 5)), (1, (2, 3, 4)),
                                                       (3, (4, 3)), (3, (2, 3, 5, 6))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prelu_matches_torch(num_parameters, shape, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[:3] = [0.0, np.nan, -np.inf]  # x = 0 on the negative side, as in torch
    dy = rng.standard_normal(shape).astype(dtype)
    layer = bp.PReLU(num_parameters, dtype=dtype)
    layer.params["alpha"][...] = rng.uniform(-0.5, 0.5, num_parameters)
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    theirs = torch.nn.PReLU(num_parameters).to(getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(layer.params["alpha"]))
    xt = torch.tensor(x, requires_grad=True)
    theirs(xt).backward(torch.tensor(dy))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert y.dtype == dx.dtype == layer.grads["alpha"].dtype == dtype
    np.testing.assert_allclose(y, theirs(xt).detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.grads["alpha"], theirs.weight.grad.numpy(), rtol=tol * 10)


def test_prelu_checks_its_channels_and_settings():
    with pytest.raises(ValueError, match=r"PReLU\(num_parameters=3\): expected input of "
                                         r"shape \(N, 3\), got \(2, 4\)"):
        bp.PReLU(3).forward(np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="PReLU: expected num_parameters to be a positive int"):
        bp.PReLU(2.0)
    with pytest.raises(ValueError, match="PReLU: expected init"):
        bp.PReLU(init=float("nan"))
    assert repr(bp.PReLU(4, init=0.0, dtype=np.float64)) == \
        "PReLU(num_parameters=4, init=0.0, dtype='float64')"
    assert bp.PReLU(4, init=0.0).get_config() == {"num_parameters": 4, "init": 0.0,
                                                   "dtype": "float32"}


def test_mean_absolute_error_is_torchs_l1_loss_for_every_reduction():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    z, t = rng.standard_normal((6, 2, 3)), rng.standard_normal((6, 2, 3))
    t[0, 0, 0] = z[0, 0, 0]  # sign(0) = 0, as torch's gradient
    for reduction in ("mean", "sum", "none"):
        loss = bp.MeanAbsoluteError(reduction=reduction)
        value = loss.forward(z, t)
        zt = torch.tensor(z, requires_grad=True)
        want = torch.nn.L1Loss(reduction=reduction)(zt, torch.tensor(t))
        g = None if reduction != "none" else rng.standard_normal(z.shape)
        want.backward(None if g is None else torch.tensor(g))
        np.testing.assert_allclose(value, want.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(loss.backward(g), zt.grad.numpy(), rtol=1e-13)


def test_multistep_lr_takes_milestones_as_torch_does_and_checks_them():
    torch = pytest.importorskip("torch")
    for milestones in ([5, 2], [2, 2, 5], [0, 3], []):  # any order, repeats, 0, none
        ours = bp.MultiStepLR(0.1, milestones, 0.5)
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, 0.5)
        for epoch in range(8):
            assert ours(epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
            opt.step()
            sched.step()
    with pytest.raises(TypeError, match="expected milestones as a list of epochs"):
        bp.MultiStepLR(0.1, 3)
    with pytest.raises(ValueError, match="each milestone"):
        bp.MultiStepLR(0.1, [-1, 3])


def test_softplus_keeps_its_settings_and_dtype_through_repr_and_save(tmp_path):
    layer = bp.Softplus(2.0, 5.0, dtype=np.float64)
    assert repr(layer) == "Softplus(beta=2.0, threshold=5.0, dtype='float64')"
    bp.save(layer, tmp_path / "softplus.npz")
    again = bp.load(tmp_path / "softplus.npz")
    assert (again.beta, again.threshold, again.dtype) == (2.0, 5.0, np.float64)
    x = np.linspace(-4, 4, 12).reshape(3, 4)
    np.testing.assert_array_equal(again.forward(x), layer.forward(x))
