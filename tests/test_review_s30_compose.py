"""Review of composing networks from one's own layers and containers (session 30): custom
layers and blocks in Sequential, against PyTorch, and the usual slips of writing one."""

import copy
import pickle

import numpy as np
import pytest

import backprop as bp

F32, F64 = np.float32, np.float64


@bp.register_layer
class _Affine(bp.Layer):
    """A Dense of one's own: weights, a bias, a buffer and a cache, as the README shows."""

    _cache_attrs = ("_x",)

    def __init__(self, n_in, n_out, *, rng=None, dtype=F32):
        super().__init__(dtype=dtype)
        self.n_in, self.n_out = n_in, n_out
        w = np.random.default_rng(rng).standard_normal((n_in, n_out)) / np.sqrt(n_in)
        self.add_param("W", w.astype(self.dtype))
        self.add_param("b", np.zeros(n_out, self.dtype))
        self.buffers["calls"] = np.zeros(1, self.dtype)
        self._x = None

    def forward(self, x, *, training=False):
        if training:
            self._x = x
            self.buffers["calls"] += 1
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy):
        x = self._pop("_x")
        self.grads["W"][...] = x.T @ dy
        self.grads["b"][...] = dy.sum(0)
        return dy @ self.params["W"].T


@bp.register_layer
class _ResBlock(bp.Container):
    """``x + fc2(relu(fc1(x)))``: a block of one's own holding its layers by name."""

    def __init__(self, fc1, fc2, act=None, *, dtype=F32):
        super().__init__(dtype=dtype)
        self.fc1, self.fc2, self.act = fc1, fc2, act or bp.ReLU(dtype=dtype)

    def children(self):
        return [("fc1", self.fc1), ("act", self.act), ("fc2", self.fc2)]

    def forward(self, x, *, training=False):
        h = self.act.forward(self.fc1.forward(x, training=training), training=training)
        return x + self.fc2.forward(h, training=training)

    def backward(self, dy):
        return dy + self.fc1.backward(self.act.backward(self.fc2.backward(dy)))


class _Scale(bp.Layer):
    """``y = x @ W`` with a slip chosen by ``slip``."""

    _cache_attrs = ("_x",)

    def __init__(self, n, slip=None, *, dtype=F32):
        super().__init__(dtype=dtype)
        self.n, self.slip = n, slip
        self.add_param("W", np.eye(n, dtype=self.dtype) * 0.5)

    def forward(self, x, *, training=False):
        if training:
            self._x = x
        y = x @ self.params["W"]
        return y.astype(F64) if self.slip == "float64" else y

    def backward(self, dy):
        x = self._pop("_x")
        self.grads["W"][...] = x.T @ dy
        dx = dy @ self.params["W"].T
        if self.slip == "float64":
            return dx.astype(F64)
        return {"none": None, "shape": dx.sum(0)}.get(self.slip, dx)


class _NoSuper(bp.Layer):
    def __init__(self):  # forgets super().__init__()
        self.k = 1

    def forward(self, x, *, training=False):
        return x

    def backward(self, dy):
        return dy


def _x(n=6, d=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def _model(dtype=F32):
    return bp.Sequential(
        _Affine(4, 6, rng=0, dtype=dtype),
        _ResBlock(bp.Dense(6, 6, rng=1, dtype=dtype), bp.Dense(6, 6, rng=2, dtype=dtype),
                  dtype=dtype),
        bp.Sequential(bp.ReLU(), bp.Dense(6, 3, rng=3, dtype=dtype)),
        bp.Residual(bp.Sequential(bp.Dense(3, 3, rng=4, dtype=dtype), bp.Tanh())))


# -- what works: checked against PyTorch and through every tool ------------------------------
def test_custom_layers_and_blocks_match_pytorch_gradients_in_float64():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6)

        def forward(self, x):
            return x + self.fc2(self.act(self.fc1(x)))

    class Res(nn.Module):
        def __init__(self, block):
            super().__init__()
            self.block = block

        def forward(self, x):
            return x + self.block(x)

    torch.manual_seed(0)
    tm = nn.Sequential(nn.Linear(4, 6), Block(), nn.Sequential(nn.ReLU(), nn.Linear(6, 3)),
                       Res(nn.Sequential(nn.Linear(3, 3), nn.Tanh()))).double()
    model = _model(F64)
    # the same names as PyTorch's, weight/bias aside
    assert [k.rsplit(".", 1)[0] for k in model.params] == \
        [k.rsplit(".", 1)[0] for k in tm.state_dict()]
    # (from_torch knows backprop's layers, not _Affine: a Linear's weight is W transposed)
    model.load_state_dict({k[:-6] + "W" if k.endswith("weight") else k[:-4] + "b":
                           v.numpy().T for k, v in tm.state_dict().items()}, strict=False)
    x, y = _x(8), np.arange(8) % 3
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.cross_entropy(tm(xt), torch.tensor(y)).backward()
    loss = bp.SoftmaxCrossEntropy(dtype=F64)
    loss.forward(model.forward(x, training=True), y)
    dx = model.backward(loss.backward())
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    grads = {k: v.grad.numpy() for k, v in tm.named_parameters()}
    for p in model.parameters():
        want = grads[p.name[:-1] + ("weight" if p.name.endswith("W") else "bias")]
        np.testing.assert_allclose(p.grad, want.T if p.name.endswith("W") else want,
                                   atol=1e-12)


def test_custom_layers_go_through_save_copy_pickle_astype_and_the_tools(tmp_path):
    model, x = _model(), _x().astype(F32)
    y = np.arange(6) % 3
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.Adam(model.parameters()),
              epochs=2, batch_size=3, progress=False)
    want = model.predict(x)
    model.save(tmp_path / "m.npz")
    for other in (bp.load(tmp_path / "m.npz"), copy.deepcopy(model),
                  pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(other.predict(x), want)
        assert other.flat_params is not None and other[0].buffers["calls"][0] == 4
    assert model.astype(F64).predict(x).dtype == F64
    assert bp.check_gradients(model.astype(F64), _x()).passed
    with bp.trace(model) as t:
        model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters()),
                  epochs=1, batch_size=3, progress=False)
    for name in ("0", "1.fc1", "3.block.0"):  # one's own layer, inside one's own block
        assert len(t[name].backward) == 2
        assert set(t[name].backward[-1].grad_norms) == {"W", "b"}


@pytest.mark.parametrize("build", [
    lambda d: bp.Sequential(d, bp.ReLU(), d),
    lambda d: bp.Sequential(bp.Residual(d), d),
    lambda d: bp.Sequential(_ResBlock(d, d, dtype=F64)),
])
def test_a_layer_object_used_twice_is_refused_naming_both_places(build):
    with pytest.raises(ValueError, match=r"expected each layer object once, got the same "
                                         r"Dense object at layer .* and at layer"):
        build(bp.Dense(4, 4, dtype=F64))


# -- the slips of writing one's own layer -------------------------------------------------
def test_a_layer_whose_init_skips_super_is_named_by_check_gradients_and_trace():
    for call in (lambda: bp.check_gradients(_NoSuper(), _x()), lambda: bp.trace(_NoSuper())):
        with pytest.raises(TypeError, match=r"_NoSuper whose __init__ does not call "
                                            r"super\(\).__init__\(\)"):
            call()


def test_reading_the_arrays_of_a_layer_whose_init_skips_super_says_why():
    layer = _NoSuper()
    assert not hasattr(layer, "dtype")  # what Sequential's own check reads
    for read in (lambda: layer.parameters(), lambda: layer.state_dict(),
                 lambda: bp.SGD(layer.parameters()), lambda: layer.buffers):
        with pytest.raises(AttributeError, match=r"calls super\(\).__init__\(dtype=dtype\)"):
            read()
    assert "params" in dir(bp.Dense(2, 2)) and "params" not in dir(layer)


@pytest.mark.parametrize("value, got", [([1.0, 2.0], "got list"), (2.0, "got float"),
                                        (np.array(["a"]), "got dtype <U1")])
def test_add_param_refuses_what_is_no_array_of_numbers(value, got):
    class Bad(bp.Layer):
        def __init__(self):
            super().__init__()
            self.add_param("w", value)

    with pytest.raises(TypeError, match=rf"Bad.add_param: expected 'w' as a NumPy array of "
                                        rf"real numbers, {got}"):
        Bad()


def test_params_and_buffers_put_in_as_lists_are_named_not_failed_deep_inside():
    class ParamList(bp.Layer):
        def __init__(self):
            super().__init__()
            self.params["w"] = [1.0, 2.0]

    class PlainDicts(bp.Layer):
        def __init__(self, buffers=None, grads=True):
            super().__init__()
            self.params = {"w": np.ones(2, F32)}
            self.grads = {"w": np.zeros(2, F32)} if grads else {}
            self.buffers = buffers or {}

    with pytest.raises(TypeError, match=r"ParamList: params: expected 'w' as a NumPy array"):
        ParamList()
    with pytest.raises(TypeError, match=r"PlainDicts: buffers: expected 'm' as a NumPy array "
                                        r"of real numbers, got list"):
        bp.Sequential(PlainDicts({"m": [0.0, 1.0]}))
    with pytest.raises(ValueError, match=r"PlainDicts: expected a gradient buffer grads\['w'\]"):
        bp.Sequential(PlainDicts(grads=False))


def test_a_container_of_ones_own_refuses_a_parameter_of_its_own():
    class Gate(bp.Container):
        def __init__(self, inner, *, dtype=F32):
            super().__init__(dtype=dtype)
            self.inner = inner
            self.add_param("alpha", np.ones(1, self.dtype))  # would be lost: params are merged

        def children(self):
            return [("inner", self.inner)]

    with pytest.raises(TypeError, match=r"Gate.add_param: a container's params are its "
                                        r"layers' \(so 'alpha' would be lost\)"):
        Gate(bp.Dense(2, 2))


@pytest.mark.parametrize("training", [False, True])
def test_a_layer_that_upcasts_a_float32_model_is_named(training):
    x = _x(d=3).astype(F32)
    mid = bp.Sequential(bp.Dense(3, 3), _Scale(3, "float64"), bp.ReLU())
    with pytest.raises(TypeError, match=r"Sequential: expected layer 1 _Scale\(3, slip="
                                        r"'float64'\) to return an array of the model's dtype "
                                        r"float32, got dtype float64, which layer 2 refused"):
        mid.forward(x, training=training)
    last = bp.Sequential(bp.Dense(3, 3), _Scale(3, "float64"))
    with pytest.raises(TypeError, match=r"expected layer 1 _Scale.* to return the model's "
                                        r"dtype float32, got float64"):
        last.forward(x, training=training)
    assert not last.has_cache and not mid.has_cache
    with pytest.raises(TypeError, match=r"expected layer 1 _Scale"):
        last.predict(x)


@pytest.mark.parametrize("slip, error, got", [
    ("none", TypeError, r"to return dx as an array of the model's dtype float32 from its "
                        r"backward, got a NoneType"),
    ("shape", ValueError, r"to return dx of its input's shape from its backward, got \(3,\)"),
])
def test_a_backward_that_returns_a_wrong_dx_is_named_not_the_layer_below(slip, error, got):
    x = _x(4, 3).astype(F32)
    model = bp.Sequential(bp.Dense(3, 3), _Scale(3, slip))
    for input_grad in (True, False):  # explicit, and as fit runs it
        model.forward(x, training=True)
        with pytest.raises(error, match=rf"Sequential: expected layer 1 _Scale\(3, slip="
                                        rf"'{slip}'\) {got}, which layer 0 refused: Dense"):
            model.backward(np.ones((4, 3), F32), input_grad=input_grad)


def test_a_first_layer_whose_backward_returns_none_still_trains():
    model = bp.Sequential(_Scale(3, "none"), bp.Dense(3, 2))
    before = model[0].params["W"].copy()
    model.fit(_x(4, 3), np.array([0, 1, 0, 1]), loss=bp.SoftmaxCrossEntropy(),
              optimizer=bp.SGD(model.parameters(), lr=0.5), epochs=1, progress=False)
    assert not np.array_equal(before, model[0].params["W"])


def test_check_gradients_fails_a_float32_layer_that_upcasts():
    result = bp.check_gradients(_Scale(3, "float64"), _x(4, 3))
    assert not result.passed
    assert any("its forward returns y in float64 and its backward returns dx in float64"
               in note for note in result.notes)
    assert bp.check_gradients(_Scale(3), _x(4, 3)).passed


def test_a_slice_of_a_model_has_the_attributes_of_a_built_one():
    model = _model()
    part = model[1:]
    assert part.output_mask is None and model.output_mask is None
    assert part.num_params == model.num_params - model[0].num_params


def test_a_forward_without_the_training_keyword_is_named_when_the_class_is_defined():
    with pytest.raises(TypeError, match=r"TorchStyle.forward: expected forward\(self, x, \*, "
                                        r"training=False\) .* got forward\(self, x\)"):
        class TorchStyle(bp.Layer):  # PyTorch's habit
            def forward(self, x):
                return x

            def backward(self, dy):
                return dy

    class Flexible(bp.Layer):  # training taken positionally or by **kwargs: fine
        def forward(self, x, training=False, **kwargs):
            return x

        def backward(self, dy):
            return dy

    assert bp.Sequential(Flexible()).forward(np.ones((1, 2)), training=True).shape == (1, 2)
