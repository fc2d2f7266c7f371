"""The gradient checker itself: it must catch wrong backwards and explain float32."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

import backprop as bp


class WrongReLU(bp.ReLU):
    """ReLU whose backward forgets to zero the negative side (a classic slip)."""

    def backward(self, dy):
        self._pop("_y")
        return dy


class SlightlyWrongDense(bp.Dense):
    """Dense whose weight gradient is off by 0.1% — too small to see in a loss curve."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"] *= 1.001
        return dx


class WrongBiasSoftmaxCE(bp.SoftmaxCrossEntropy):
    def backward(self):
        return super().backward() * 2.0


def _x(shape=(5, 4)):
    x = np.random.default_rng(0).standard_normal(shape)
    return x + np.sign(x) * 0.1


def test_checker_fails_on_a_wrong_activation_backward():
    result = bp.check_gradients(WrongReLU(dtype=np.float64), _x())
    assert not result.passed
    assert result.tensor == "x" and result.max_error > 0.5


def test_checker_names_the_parameter_of_a_subtly_wrong_weight_gradient():
    result = bp.check_gradients(SlightlyWrongDense(4, 3, dtype=np.float64, rng=0), _x())
    assert not result.passed
    assert result.tensor == "W"
    assert result.errors["x"] < 1e-6 and result.errors["b"] < 1e-6
    assert "FAILED" in str(result) and "W[" in str(result)


class NaNGradDense(bp.Dense):
    """Dense whose weight gradient has one NaN entry (say, from a 0/0 in a hand formula)."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"][1, 2] = np.nan
        return dx


def test_checker_fails_on_a_nan_gradient_entry():
    result = bp.check_gradients(NaNGradDense(4, 3, dtype=np.float64, rng=0), _x())
    assert not result.passed
    assert result.tensor == "W" and result.index == (1, 2)


def test_checker_fails_on_a_wrong_loss_gradient():
    logits = np.random.default_rng(0).standard_normal((4, 3))
    result = bp.check_gradients(WrongBiasSoftmaxCE(), logits, np.array([0, 1, 2, 1]))
    assert not result.passed and result.tensor == "output"


class UserL1(bp.Loss):
    """A user's loss written as the Loss docstring says: per-sample losses and the
    gradient of their sum, not yet divided by N."""

    def _forward(self, output, target):
        d = output - target
        m = d[0].size
        return np.abs(d).reshape(len(d), -1).mean(axis=1), np.sign(d) / m


def test_a_loss_written_as_the_base_class_docstring_says_is_right():
    out = np.random.default_rng(1).standard_normal((3, 2))
    loss = UserL1()
    assert loss.forward(out, np.zeros_like(out)) == pytest.approx(np.abs(out).mean())
    np.testing.assert_allclose(loss.backward(), np.sign(out) / out.size)
    assert bp.check_gradients(UserL1(), out, np.zeros_like(out)).passed


def test_checker_promotes_float32_with_an_explanation():
    layer = bp.Dense(4, 3, rng=0)
    result = bp.check_gradients(layer, _x().astype(np.float32))
    assert result.passed
    assert any("float32" in note and "false alarm" in note for note in result.notes)
    assert layer.dtype == np.float32  # the user's layer is untouched


def test_checker_refuses_float32_when_asked_not_to_promote():
    with pytest.raises(TypeError, match="float32 carry errors near 1e-3"):
        bp.check_gradients(bp.Dense(4, 3, rng=0), _x(), promote=False)


def test_checker_checks_a_user_written_layer():
    class Square(bp.Layer):
        """y = x², dx = 2 x dy."""

        _cache_attrs = ("_x",)

        def forward(self, x, *, training=False):
            if training:
                self._x = x
            return x * x

        def backward(self, dy):
            return 2 * self._pop("_x") * dy

    assert bp.check_gradients(Square(dtype=np.float64), _x()).passed
    assert bp.check_gradients(Square(dtype=np.float64), _x(), stack=True).passed


def test_checker_catches_a_wrong_layer_inside_a_stack():
    result = bp.check_gradients(WrongReLU(dtype=np.float64), _x(), stack=True)
    assert not result.passed


def test_checker_covers_every_parameter_of_a_model():
    model = bp.Sequential([bp.Dense(4, 5, dtype=np.float64, rng=0), bp.Sigmoid(dtype=np.float64),
                           bp.Dense(5, 2, dtype=np.float64, rng=1)])
    result = bp.check_gradients(model, _x())
    assert result.passed
    assert set(result.errors) == {"x", "0.W", "0.b", "2.W", "2.b"}


def test_checker_rejects_non_layers():
    with pytest.raises(TypeError, match="expected a Layer or a Loss"):
        bp.check_gradients(lambda x: x, _x())


def test_checking_a_layer_of_a_model_leaves_it_attached_to_the_model():
    model = bp.Sequential([bp.Dense(4, 3, dtype=np.float64, rng=0), bp.Tanh(dtype=np.float64)])
    weights = model[0].params["W"]
    for stack in (False, True):
        assert bp.check_gradients(model[0], _x(), stack=stack).passed
    assert model[0].params["W"] is weights
    assert np.shares_memory(model[0].params["W"], model.flat_params)


def _model_with_a_pre_activation_near_zero(gap):
    """Dense -> ReLU -> Dense whose unit 0 sees z = gap on sample 0 (a kink within eps)."""
    model = bp.Sequential([bp.Dense(4, 3, rng=0, dtype=np.float64), bp.ReLU(dtype=np.float64),
                           bp.Dense(3, 2, rng=1, dtype=np.float64)])
    x = _x((3, 4))
    dense = model.layers[0]
    dense.params["b"][0] += gap - (x[0] @ dense.params["W"][:, 0] + dense.params["b"][0])
    return model, x


def test_checker_rechecks_an_entry_that_straddles_a_relu_kink():
    # z = 4e-6 < eps * |x|: the default central difference mixes both sides of the kink
    model, x = _model_with_a_pre_activation_near_zero(4e-6)
    result = bp.check_gradients(model, x)
    assert result.passed, str(result)
    assert any("straddled a kink" in n for n in result.notes), result.notes
    assert result.max_error < 1e-4


def test_a_wrong_backward_at_a_kink_still_fails():
    model, x = _model_with_a_pre_activation_near_zero(4e-6)
    model.layers[1] = WrongReLU(dtype=np.float64)
    result = bp.check_gradients(model, x)
    assert not result.passed and result.max_error > 0.1


def test_checker_notes_nothing_when_no_entry_is_near_a_kink():
    model, x = _model_with_a_pre_activation_near_zero(0.5)
    result = bp.check_gradients(model, x)
    assert result.passed and not any("kink" in n for n in result.notes)


def test_a_subtle_bug_is_not_excused_by_the_kink_recheck():
    # 0.1% off in dW, with a pre-activation on a kink: the recheck must not pass it
    model, x = _model_with_a_pre_activation_near_zero(4e-6)
    wrong = SlightlyWrongDense(4, 3, dtype=np.float64, rng=0)
    wrong.params["b"][...] = model.layers[0].params["b"]
    model.layers[0] = wrong
    result = bp.check_gradients(model, x)
    assert not result.passed and result.tensor == "0.W"
    assert 5e-4 < result.max_error < 5e-3


def _blank_images():
    """Images with blank borders, as digits have: through zero padding and a zero bias,
    the convolution's outputs there are exactly 0, the ReLU's kink."""
    x = np.zeros((3, 1, 6, 6))
    x[:, :, 2:4, 2:4] = np.random.default_rng(0).uniform(0.2, 1.0, (3, 1, 2, 2))
    return x


def _small_cnn(relu=bp.ReLU):
    return bp.Sequential([bp.Conv2D(1, 4, 3, padding=1, dtype=np.float64, rng=0),
                          relu(dtype=np.float64), bp.MaxPool2D(2, dtype=np.float64),
                          bp.Flatten(dtype=np.float64),
                          bp.Dense(36, 3, dtype=np.float64, rng=1)])


def test_an_input_exactly_on_kinks_is_checked_nearby_and_says_so():
    """Real images (zeros) put ReLU inputs at exactly 0: no step can match a one-sided
    derivative there, which used to read as FAILED with no reason."""
    for model, x in ((_small_cnn(), _blank_images()),
                     (bp.ReLU(dtype=np.float64), np.zeros((2, 3)))):
        result = bp.check_gradients(model, x)
        assert result.passed, str(result)
        assert any(n.startswith("x as given lies exactly on kinks") and "scale 1e-03" in n
                   for n in result.notes), result.notes


@pytest.mark.parametrize("make, x", [(lambda: _small_cnn(WrongReLU), _blank_images()),
                                     (lambda: WrongReLU(dtype=np.float64), np.zeros((2, 3)))])
def test_a_wrong_backward_on_kinks_still_fails_at_the_nearby_input(make, x):
    result = bp.check_gradients(make(), x)
    assert not result.passed
    # failed at the nearby input too, or failed where the objective is smooth (its
    # one-sided slopes agree), which no nearby input would excuse
    assert (any("the check fails too, so this is not a kink of x" in n for n in result.notes)
            or not result.on_kinks_only)


def test_a_nan_gradient_on_a_kink_is_not_excused_by_the_nearby_check():
    """|x| whose backward divides by |x|: NaN at 0, right elsewhere; the retry at x + noise
    must not pass it."""
    class Abs(bp.Layer):
        def forward(self, x, *, training=False):
            if training:
                self._x = x
            return np.abs(x)

        def backward(self, dy):
            x, self._x = self._x, None
            with np.errstate(invalid="ignore"):
                return dy * x / np.abs(x)

    result = bp.check_gradients(Abs(dtype=np.float64), np.array([[0.0, 1, -2], [0.5, 0, 3]]))
    assert not result.passed and not any("noise" in n for n in result.notes)


def test_a_check_that_stops_re_measuring_says_what_its_per_tensor_errors_mean():
    """Past 16 confirmed failures the rest keep their first-step errors, which can exceed
    the headline (the worst confirmed one); the note says so."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4))
    result = bp.check_gradients(bp.Sequential([WrongReLU(dtype=np.float64)]), x)
    assert not result.passed
    assert any("the rest were not re-measured" in n for n in result.notes), result.notes


def test_a_failing_check_at_distinct_nonzero_inputs_is_not_run_again():
    result = bp.check_gradients(WrongReLU(dtype=np.float64), _x())
    assert not result.passed and not any("noise" in n for n in result.notes)


def _dense64():
    return bp.Dense(4, 3, dtype=np.float64, rng=0)


@pytest.mark.parametrize("name", ["eps", "tol", "floor"])
@pytest.mark.parametrize("value", [0, -1e-5, float("nan"), float("inf")])
def test_checker_rejects_a_step_or_tolerance_that_is_not_finite_and_positive(name, value):
    with pytest.raises(ValueError, match=rf"check_gradients: expected {name} in \(0.0, inf\)"):
        bp.check_gradients(_dense64(), _x(), **{name: value})


@pytest.mark.parametrize("name", ["eps", "tol", "floor"])
def test_checker_rejects_a_step_or_tolerance_that_is_not_a_number(name):
    with pytest.raises(TypeError, match=f"check_gradients: expected {name} to be a number, "
                                        "got 'a'"):
        bp.check_gradients(_dense64(), _x(), **{name: "a"})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_checker_refuses_a_non_finite_input_instead_of_failing_the_layer(bad):
    x = _x()
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r"check_gradients: expected a finite x, got 1 "
                                         r"non-finite values \(NaN/inf\)"):
        bp.check_gradients(_dense64(), x)
    with pytest.raises(ValueError, match="expected a finite x"):
        bp.check_gradients(bp.SoftmaxCrossEntropy(), x, np.array([0, 1, 2, 1, 0]))


def test_checker_refuses_an_empty_input_with_nothing_to_check():
    with pytest.raises(ValueError, match=r"check_gradients: expected x with at least one "
                                         r"element, got shape \(0, 4\): nothing to check"):
        bp.check_gradients(_dense64(), np.zeros((0, 4)))


def test_checker_refuses_complex_and_non_numeric_inputs():
    with pytest.raises(TypeError, match="check_gradients: expected x as an array of real "
                                        "numbers, got complex"):
        bp.check_gradients(_dense64(), _x() + 1j)
    with pytest.raises(TypeError, match="expected x as an array of real numbers, got dtype <U1"):
        bp.check_gradients(_dense64(), [["a"] * 4])


def test_checker_rejects_bad_rng_flags_and_a_target_for_a_layer():
    with pytest.raises(TypeError, match="check_gradients: expected rng to be a numpy Generator"):
        bp.check_gradients(_dense64(), _x(), rng="seed")
    with pytest.raises(ValueError, match="check_gradients: expected rng as a seed >= 0"):
        bp.check_gradients(_dense64(), _x(), rng=-1)
    with pytest.raises(TypeError, match="check_gradients: expected stack to be True or False"):
        bp.check_gradients(_dense64(), _x(), stack="yes")
    with pytest.raises(TypeError, match="check_gradients: expected promote to be True or False"):
        bp.check_gradients(_dense64(), _x(), promote=None)
    with pytest.raises(ValueError, match=r"check_gradients: expected target=None for a Layer"):
        bp.check_gradients(_dense64(), _x(), np.zeros(5))


def test_checker_still_accepts_integer_inputs_and_a_generator():
    x = np.array([[1, -2, 3, 4], [0, 5, -1, 2]])  # int64: promoted to float64
    assert bp.check_gradients(_dense64(), x, rng=np.random.default_rng(1)).passed


class BuggyLinear(bp.Layer):
    """``x @ W + b`` with one realistic backward bug (or none): the contract breaches a
    slope cannot show on a fresh layer."""

    def __init__(self, bug=None):
        super().__init__(dtype=np.float64)
        rng = np.random.default_rng(0)
        self.bug, self.calls = bug, 0
        self.add_param("W", rng.standard_normal((4, 3)))
        self.add_param("b", rng.standard_normal(3))

    def forward(self, x, *, training=False):
        if self.bug == "writes x":
            x *= 1.5  # into the caller's array
        if self.bug == "np.random":
            x = x + np.random.default_rng().random()  # a fresh Generator each call
        if training:
            self._x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy):
        self.calls += 1
        if self.bug == "adds":  # PyTorch's habit: accumulate
            self.grads["b"][...] += dy.sum(axis=0)
        else:
            self.grads["b"][...] = dy.sum(axis=0)
        if self.bug != "once" or self.calls == 1:
            self.grads["W"][...] = self._x.T @ dy
        dx = dy @ self.params["W"].T
        if self.bug == "writes dy":
            dy *= 0.0
        return dx

    def backward_params(self, dy):
        self.backward(dy)
        if self.bug == "backward_params":
            self.grads["b"][...] *= 0.5


@pytest.mark.parametrize(("bug", "tensor", "note"), [
    ("adds", "b", r"a backward that adds to them \(\+=\) or skips entries leaves NaN"),
    ("once", "W (its second call)", r"other gradients on a second forward/backward"),
    ("backward_params", "b (backward_params)",
     r"backward_params, which training runs for a model's first layer .*gave other"),
    ("writes x", None, r"forward or backward wrote into its input x"),
    ("writes dy", None, r"backward wrote into its argument dy"),
])
def test_checker_holds_a_backward_to_the_contract_a_fresh_slope_cannot_show(bug, tensor, note):
    assert bp.check_gradients(BuggyLinear(), _x()).passed  # the correct one passes
    stacked = bp.Sequential([BuggyLinear(bug), bp.Tanh(dtype=np.float64)])
    # in a model, the dy a layer gets is the layer above's dx: only the model's own
    # arguments are watched there
    for layer in [BuggyLinear(bug)] + ([stacked] if bug != "writes dy" else []):
        result = bp.check_gradients(layer, _x())
        assert not result.passed and re.search(note, str(result))
        if tensor is not None:
            prefix = "0." if isinstance(layer, bp.Sequential) else ""
            assert result.tensor == prefix + tensor


def test_checker_refuses_a_layer_whose_forward_is_not_reproducible():
    with pytest.raises(ValueError, match=r"check_gradients: expected .* to give the same "
                                         r"output on two fresh copies .*np.random"):
        bp.check_gradients(BuggyLinear("np.random"), _x())


def test_checker_allows_the_round_off_of_a_large_objective_and_still_catches_a_small_bug():
    x = np.random.default_rng(0).integers(0, 17, (64, 48)).astype(np.float64)  # pixels 0-16
    dense = bp.Dense(48, 32, dtype=np.float64, rng=0)
    result = bp.check_gradients(dense, x)
    assert result.passed, str(result)
    result = bp.check_gradients(SlightlyWrongDense(48, 32, dtype=np.float64, rng=0), x)
    assert not result.passed and result.tensor == "W"


class Float32OnlyBug(bp.Dense):
    """A 1% error in code that only float32 runs (a dtype-specific fast path)."""

    def backward_params(self, dy):
        super().backward_params(dy)
        if dy.dtype == np.float32:
            self.grads["W"] *= 1.01


def test_checker_compares_a_float32_layers_own_backward_with_its_float64_copy():
    x = np.random.default_rng(0).standard_normal((5, 4))
    result = bp.check_gradients(Float32OnlyBug(4, 3, rng=0), x)
    assert not result.passed and result.tensor == "W (float32)"
    assert re.search(r"the float32 layer's own backward disagrees with its float64 copy's: "
                     r"W\[\d, \d\] .* off by 9\.9e-03", str(result))
    assert bp.check_gradients(Float32OnlyBug(4, 3, rng=0, dtype=np.float64), x).passed
    # a bias before BatchNorm has a gradient of ~0 whose float32 round-off is large
    # beside it: no false alarm
    model = bp.Sequential([bp.Dense(8, 16, rng=0), bp.BatchNorm(16), bp.ReLU(),
                           bp.Dense(16, 3, rng=1)])
    assert bp.check_gradients(model, np.random.default_rng(1).integers(0, 17, (32, 8))).passed


class Scaled(bp.Layer):
    """``y = x * s`` (one weight per feature), smooth everywhere; with ``bug`` its ``dx``
    has the wrong sign, or is zeroed where ``x == 0`` (as if it were a ReLU)."""

    def __init__(self, init, bug):
        super().__init__(dtype=np.float64)
        self.bug = bug
        self.add_param("s", np.full(3, init))

    def forward(self, x, *, training=False):
        if training:
            self._x = x
        return x * self.params["s"]

    def backward(self, dy):
        x = self._pop("_x")
        self.grads["s"][...] = (dy * x).sum(axis=0)
        dx = dy * self.params["s"]
        return -dx if self.bug == "sign" else np.where(x == 0, 0.0, dx)


def test_a_wrong_gradient_where_nothing_bends_is_not_excused_as_a_kink():
    x = np.random.default_rng(0).standard_normal((4, 3))
    # tiny weights: the smaller steps' round-off allowance used to swallow a wrong sign
    result = bp.check_gradients(Scaled(1e-8, "sign"), x)
    assert not result.passed and result.tensor == "x"
    assert not any("straddled a kink" in n for n in result.notes)
    # zeros in x: the retry at x + noise used to pass a dx zeroed there
    x[:, 1] = 0.0
    result = bp.check_gradients(Scaled(0.5, "zeroed"), x)
    assert not result.passed and result.tensor == "x" and result.index[1] == 1
    assert not any(n.startswith("x as given lies exactly on kinks") for n in result.notes)


class Temperature(bp.Layer):
    """``x / T`` with one learnable scalar ``T`` (a 0-d parameter)."""

    _cache_attrs = ("_x",)

    def __init__(self, *, dtype=np.float64):
        super().__init__(dtype=dtype)
        self.add_param("T", np.array(2.0, dtype))

    def forward(self, x, *, training=False):
        if training:
            self._x = x
        return x / self.params["T"]

    def backward(self, dy):
        x, t = self._pop("_x"), self.params["T"]
        self.grads["T"][...] = -np.sum(dy * x) / t**2
        return dy / t


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_checker_takes_a_0d_parameter(dtype):
    result = bp.check_gradients(Temperature(dtype=dtype), _x((8, 5)))
    assert result.passed and set(result.errors) == {"x", "T"}


def test_no_false_alarm_near_a_kink_of_a_large_objective_or_at_a_steep_smooth_spot():
    x = np.random.default_rng(0).standard_normal((256, 64))
    x[0, 0] = 5e-6  # within the step of ReLU's kink, in a sum of 16,384 outputs
    assert bp.check_gradients(bp.ReLU(dtype=np.float64), x).passed
    pixels = np.random.default_rng(1).integers(0, 17, (2, 16)).astype(np.float64)
    pixels[:, :4] = 0.0  # constant columns over a batch of 2: BatchNorm is steep there
    assert bp.check_gradients(bp.BatchNorm(16, dtype=np.float64), pixels).passed


class StaleTranspose(bp.Layer):
    """``x @ W``, reading ``W.T`` cached at its first forward: a copy reused across
    evaluations would miss every perturbation of ``W`` after the first."""

    def __init__(self):
        super().__init__(dtype=np.float64)
        self.add_param("W", np.random.default_rng(0).standard_normal((4, 3)))
        self._wt = None

    def forward(self, x, *, training=False):
        if self._wt is None:
            self._wt = self.params["W"].T.copy()
        if training:
            self._x = x
        return x @ self._wt.T

    def backward(self, dy):
        self.grads["W"][...] = self._x.T @ dy
        return dy @ self.params["W"].T


class Counting(bp.Layer):
    """``x · (1 + calls)``: a fresh copy's first forward is the identity."""

    def __init__(self):
        super().__init__(dtype=np.float64)
        self.calls = 0

    def forward(self, x, *, training=False):
        self.calls += 1
        return x * self.calls

    def backward(self, dy):
        return dy * self.calls


@pytest.mark.parametrize("layer", [StaleTranspose, Counting])
def test_checker_evaluates_fresh_copies_of_a_layer_whose_calls_change_it(layer):
    """Each slope is of fresh copies; the checker reuses one copy only where that gives
    the same numbers, so a layer whose output depends on its earlier calls is checked
    as a fresh one computes."""
    assert bp.check_gradients(layer(), _x()).passed
    assert bp.check_gradients(bp.Sequential([layer(), bp.Tanh(dtype=np.float64)]), _x()).passed


def test_checker_copies_a_repeatable_model_a_few_times_not_per_evaluation(monkeypatch):
    """A model whose forward gives the same numbers on one reused copy is not deep-copied
    for every one of the ~2 evaluations per entry (that was ~85 % of the check's time)."""
    from types import SimpleNamespace

    from backprop import _gradcheck_compare, gradcheck

    calls = []

    def counting(obj, memo=None):
        calls.append(type(obj).__name__)
        return copy.deepcopy(obj, memo)

    for module in (gradcheck, _gradcheck_compare):
        monkeypatch.setattr(module, "copy", SimpleNamespace(deepcopy=counting))
    model = bp.Sequential([bp.Dense(4, 5, rng=0, dtype=np.float64), bp.Tanh(dtype=np.float64),
                           bp.Dense(5, 2, rng=1, dtype=np.float64)])
    entries = _x().size + model.num_params
    assert bp.check_gradients(model, _x()).passed
    assert 0 < len(calls) < 40 < 2 * entries, calls
    calls.clear()  # Dropout draws anew on a reused copy: a fresh copy per evaluation
    dropped = bp.Sequential([bp.Dense(4, 5, rng=0, dtype=np.float64),
                             bp.Dropout(0.5, rng=0, dtype=np.float64)])
    assert bp.check_gradients(dropped, _x()).passed
    assert len(calls) > 2 * (_x().size + dropped.num_params)


def test_a_layer_with_a_generator_is_never_checked_on_a_reused_copy():
    """Three Dropout masks can repeat by chance through the reuse test, then differ
    between the two sides of a slope (numeric -756830 against 0 in a property test)."""
    x = np.array([[0.7, -1.3, 2.1]])
    for seed in range(40):
        for rate in (0.1, 0.5, 0.9):
            result = bp.check_gradients(bp.Dropout(rate, rng=seed, dtype=np.float64), x)
            assert result.passed, (seed, rate, str(result))


class LateChange(bp.Layer):
    """``x · W``, scaled by 1.001 from its 11th call on: a change no short reuse test sees."""

    def __init__(self):
        super().__init__(dtype=np.float64)
        self.add_param("W", np.random.default_rng(0).standard_normal(4))
        self.count = 0

    def forward(self, x, *, training=False):
        self.count += 1
        if training:
            self._x = x
        return x * self.params["W"] * (1.001 if self.count > 10 else 1.0)

    def backward(self, dy):
        self.grads["W"][...] = (dy * self._x).sum(axis=0)
        return dy * self.params["W"]


def test_a_reused_copy_whose_state_drifts_late_is_checked_again_on_fresh_copies():
    """The reuse test runs a few calls; a layer that changes after more (a counter passing
    a threshold) failed the check (9.99e-4) where fresh copies pass (3.4e-10)."""
    for stack in (False, True):
        result = bp.check_gradients(LateChange(), _x(), stack=stack)
        assert result.passed, str(result)
