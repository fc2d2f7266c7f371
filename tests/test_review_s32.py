"""Session 32: containers that build their own children (PyTorch's habit) save and load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_save_safety import SelfBuilt

import backprop as bp


@bp.register_layer
class Block(bp.Container):
    """``Block(width)`` builds Dense -> Dropout -> Residual(Sequential(Dense, ReLU))."""

    def __init__(self, width, *, p=0.25, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.width, self.p = width, p
        self.fc = bp.Dense(width, width, dtype=dtype, rng=0)
        self.drop = bp.Dropout(p, rng=1)
        self.res = bp.Residual(bp.Sequential([bp.Dense(width, width, dtype=dtype, rng=2),
                                              bp.ReLU()], dtype=dtype))

    def children(self):
        return [("fc", self.fc), ("drop", self.drop), ("res", self.res)]

    def forward(self, x, *, training=False):
        for _, layer in self.children():
            x = layer.forward(x, training=training)
        return x

    def backward(self, dy):
        for _, layer in reversed(self.children()):
            dy = layer.backward(dy)
        return dy


def _model(width=4, p=0.25):
    return bp.Sequential([Block(width, p=p), bp.Dense(width, 3, rng=3)])


def _data(n=32, width=4):
    rng = np.random.default_rng(5)
    return rng.standard_normal((n, width)).astype(np.float32), np.arange(n) % 3


def test_a_block_that_builds_its_children_loads_with_its_weights_and_dropout_stream(tmp_path):
    model = _model(p=0.5)
    x, y = _data()
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), lr=0.1),
              epochs=2, batch_size=8, progress=False)
    bp.save(model, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert isinstance(loaded[0], Block) and loaded[0].p == 0.5
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v, err_msg=k)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # the Dropout's Generator continues where the saved one stood: the same masks next
    np.testing.assert_array_equal(loaded(x, training=True), model(x, training=True))


def test_a_resumed_fit_of_such_a_block_continues_bit_for_bit(tmp_path):
    x, y = _data()

    def fit(model, epochs, **kw):
        opt = bp.Adam(model.parameters(), lr=0.01)
        return model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=epochs,
                         batch_size=8, progress=False, seed=0, **kw)

    straight = _model()
    fit(straight, 4)
    def checkpoint(name):
        return [bp.ModelCheckpoint(tmp_path / name, monitor="loss", save_best_only=False)]

    fit(_model(), 2, callbacks=checkpoint("c.npz"))
    resumed = _model()
    fit(resumed, 4, resume=tmp_path / "c.npz", callbacks=checkpoint("d.npz"))
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)


def test_a_block_rebuilt_with_other_children_is_refused_by_load_with_names(tmp_path):
    bp.save(_model(), tmp_path / "m.npz")
    try:
        @bp.register_layer(name="Block")
        class Other(Block):  # the same name, now building its children under other names
            def children(self):
                return [("dense", self.fc), ("drop", self.drop), ("res", self.res)]

        with pytest.raises(ValueError, match=r"cannot rebuild Block at 0 .*expected Other's "
                                             r"constructor to build the children \['fc', "
                                             r"'drop', 'res'\], as saved, got \['dense'"):
            bp.load(tmp_path / "m.npz")

        @bp.register_layer(name="Block")
        class Swapped(Block):  # the same names, another class at one of them
            def __init__(self, width, *, p=0.25, dtype=np.float32):
                super().__init__(width, p=p, dtype=dtype)
                self.drop = bp.Identity()

        with pytest.raises(ValueError, match=r"expected its child 'drop' to be a Dropout, as "
                                             r"saved, got a Identity"):
            bp.load(tmp_path / "m.npz")
    finally:
        bp.register_layer(Block)


def test_a_block_that_forgets_its_argument_is_still_refused_at_save(tmp_path):
    @bp.register_layer
    class Forgetful(Block):
        def __init__(self, size, *, dtype=np.float32):
            super().__init__(size, dtype=dtype)  # keeps width, not size

    model = bp.Sequential([Forgetful(4), bp.Dense(4, 3, rng=3)])
    with pytest.raises(ValueError, match=r"(?s)cannot rebuild Forgetful at 0 .* Nothing was "
                                         r"written \(Forgetful \(0\) keeps no attribute "
                                         r"named 'size'\): .*every constructor argument under "
                                         r"its own name"):
        bp.save(model, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


@bp.register_layer
class Plain(SelfBuilt):
    """Builds float32 children whatever its dtype (as many a PyTorch-style block would),
    and keeps its argument under its own name (SelfBuilt does not), so it loads."""

    def __init__(self, width, *, dtype=np.float32):
        super().__init__(width, dtype=dtype)
        self.width = width


def test_a_float64_copy_of_a_block_that_ignores_dtype_loads_in_float64(tmp_path):
    model = bp.Sequential([Plain(4), bp.Dense(4, 2, rng=2)]).astype(np.float64)
    bp.save(model, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert {layer.dtype for _, layer in loaded.named_layers()} == {np.dtype(np.float64)}
    x = np.random.default_rng(0).standard_normal((5, 4))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("t_0, t_mult, eta_min", [(2, 1, 0.0), (3, 2, 0.01), (1, 3, 0.0)])
def test_warm_restarts_take_a_fraction_of_an_epoch_as_pytorch_step_does(t_0, t_mult, eta_min):
    """PyTorch documents ``scheduler.step(epoch + i / iters)`` inside the batch loop."""
    torch = pytest.importorskip("torch")
    ours = bp.CosineAnnealingWarmRestarts(0.1, t_0, t_mult, eta_min)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, t_0, t_mult, eta_min)
    seen = set()
    for epoch in range(20):
        for i in range(7):
            theirs.step(epoch + i / 7)
            rate = ours(epoch + i / 7)
            assert rate == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
            seen.add(round(rate, 6))
    assert len(seen) >= 7 * t_0  # the rate moves within epochs, not only at whole ones
    assert ours(np.float32(2.5)) == ours(2.5) and ours(4.0) == ours(4)
    assert ours.group_rates(1.5, [1.0, 0.5]) == (
        [ours(1.5), ours._from(1.5, 0.05)] if eta_min else None)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_warm_restarts_refuse_a_fraction_below_0_or_not_finite(bad):
    with pytest.raises(ValueError, match=r"CosineAnnealingWarmRestarts: expected epoch in "
                                         r"\[0.0, inf\) \(finite\)"):
        bp.CosineAnnealingWarmRestarts(0.1, 2)(bad)


@pytest.mark.parametrize("schedule", [bp.CosineAnnealingLR(0.1, 10), bp.StepLR(0.1, 2),
                                      bp.ExponentialLR(0.1, 0.9)])
def test_other_epoch_schedules_name_the_per_batch_route_for_a_fraction(schedule):
    with pytest.raises(TypeError, match=r"expected epoch to be an int >= 0, got 2.5: it counts "
                                         r"whole epochs \(for a rate per batch, give its "
                                         r"periods in batches .* per_step=True"):
        schedule(2.5)


@bp.register_layer
class Mixed(bp.Container):
    """Takes one child as an argument and builds the other itself."""

    def __init__(self, block, width, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.block, self.width = block, width
        self.extra = bp.Dense(width, width, dtype=dtype, rng=0)

    def children(self):
        return [("block", self.block), ("extra", self.extra)]

    def forward(self, x, *, training=False):
        return self.extra.forward(self.block.forward(x, training=training), training=training)

    def backward(self, dy):
        return self.block.backward(self.extra.backward(dy))


def test_a_block_given_one_child_and_building_another_loads_both(tmp_path):
    model = bp.Sequential([Mixed(bp.Sequential([bp.Dense(4, 4, rng=1), bp.Dropout(0.5, rng=4)]),
                                 4), bp.Dense(4, 2, rng=2)])
    model.params["0.extra.W"][...] = 0.5  # not what the constructor draws
    bp.save(model, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v, err_msg=k)
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x, training=True), model(x, training=True))



# -- the command line (a review of every flag) ---------------------------------------------
def test_cli_refuses_a_read_only_output_file_before_training(tmp_path, monkeypatch, capsys):
    from backprop import __main__ as cli

    target = tmp_path / "m.npz"
    target.write_bytes(b"kept")
    real = os.access
    monkeypatch.setattr(cli.os, "access", lambda p, mode: real(p, mode) and Path(p) != target)
    assert cli.main(["train", "--output", str(target), "--epochs", "1"]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # nothing loaded, nothing trained
    assert err == (f"backprop train: error: --output: expected a file that can be replaced, "
                   f"got {str(target)!r}, which is read-only\n")
    assert target.read_bytes() == b"kept"


@pytest.mark.parametrize("flag", ["--output", "--data"])
def test_cli_names_the_flag_of_a_path_too_long_or_empty(tmp_path, flag, capsys):
    from backprop.__main__ import main

    long = "a" * 300 + ".npz"
    assert main(["train", flag, str(tmp_path / long)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"backprop train: error: {flag}: expected a path this system can "
                          f"look up, got '{str(tmp_path)[:40]}")
    assert err.endswith("...' (File name too long)\n")
    assert "[Errno" not in err
    assert main(["train", flag, ""]) == 1
    assert capsys.readouterr().err == (f"backprop train: error: {flag}: expected a path, got "
                                       f"an empty string\n")


def test_cli_trains_on_idx_files_of_more_than_ten_classes(tmp_path, capsys):
    from test_datasets import idx_bytes

    from backprop.__main__ import main

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 260), ("t10k", 52)):
        labels = np.arange(n, dtype=np.uint8) % 26  # EMNIST letters' size
        pixels = (labels[:, None, None] * 9 + rng.integers(0, 5, (n, 4, 4))).astype(np.uint8)
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
            idx_bytes(2051, (n, 4, 4), pixels.tobytes()))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(
            idx_bytes(2049, (n,), labels.tobytes()))
    assert main(["train", "--data", str(tmp_path), "--epochs", "2", "--no-progress",
                 "--output", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert "260 train / 52 test samples, 16 features, 26 classes" in out
    assert bp.load(tmp_path / "m.npz").predict(np.zeros((1, 16))).shape == (1, 26)


def test_cli_keeps_training_and_saving_when_its_reader_stops_reading(tmp_path):
    """``python -m backprop train | head -n 1`` used to fail with 'Broken pipe', unsaved."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "backprop", "train", "--epochs", "2",
                             "--no-progress", "--output", str(tmp_path / "m.npz")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=tmp_path)
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as head's does
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert first.startswith(b"data: digits:") and "Broken pipe" not in err
    assert (tmp_path / "m.npz").exists()


def test_cli_refuses_an_mlp_past_the_memory_available(monkeypatch, capsys):
    from backprop import _cli_args
    from backprop.__main__ import main

    monkeypatch.setattr(_cli_args, "available_memory", lambda: 2**30)
    assert main(["train", "--hidden", "10000,10000"]) == 1
    err = capsys.readouterr().err
    assert err == ("backprop train: error: --hidden: expected an MLP that fits in memory, got "
                   "64-10000-10000-10 with 100,760,010 parameters: about 1.5 GiB with its "
                   "gradients and optimizer state, and 1.0 GiB is available\n")
    monkeypatch.setattr(_cli_args, "available_memory", lambda: None)  # unknown: not refused
    _cli_args.check_memory([64, 10000, 10000, 10], 100_760_010)


def test_cli_help_of_the_installed_command_shows_its_own_name(monkeypatch):
    from backprop.__main__ import make_parser

    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/backprop"])
    text = make_parser().format_help()
    assert "  backprop train --data ~/mnist" in text and "python -m" not in text
    monkeypatch.setattr(sys, "argv", ["/x/backprop/__main__.py"])
    assert "  python -m backprop train\n" in make_parser().format_help()


@pytest.mark.parametrize("kids, got", [
    (lambda a, b: [a, b], r"got Dense\(3, 3\) in it"),
    (lambda a, b: [("a", a), ("b", "b")], r"got \('b', 'b'\) in it"),
    (lambda a, b: {"a": a, "b": b}, r"a list of \(name, layer\) pairs, as \[\('a', "
                                    r"self.a\)\], got a dict")])
def test_a_container_whose_children_are_not_name_layer_pairs_is_named(kids, got):
    class Pair(bp.Container):
        def __init__(self, a, b, *, dtype=np.float32):
            super().__init__(dtype=dtype)
            self.a, self.b = a, b

        def children(self):
            return kids(self.a, self.b)

        def forward(self, x, *, training=False):
            return self.b.forward(self.a.forward(x, training=training), training=training)

        def backward(self, dy):
            return self.a.backward(self.b.backward(dy))

    with pytest.raises(TypeError, match=r"Sequential: expected Pair.children\(\) to return .*"
                                        + got):
        bp.Sequential([Pair(bp.Dense(3, 3), bp.Dense(3, 3))])
    model = bp.Sequential([bp.Dense(3, 3)])
    with pytest.raises(TypeError, match=r"Sequential.add: expected Pair.children\(\)"):
        model.add(Pair(bp.Dense(3, 3), bp.Dense(3, 3)))


def test_from_torch_names_the_norm_option_when_a_pytorch_norm_has_no_arrays():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Sequential(torch.nn.LayerNorm(3, elementwise_affine=False),
                                 torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"expected 2 PyTorch modules with weights \(for "
                                         r"LayerNorm\(3\), Dense\(3, 2\)\), got 1: \['1'\]; a "
                                         r"PyTorch norm with elementwise_affine=False or "
                                         r"affine=False .* build LayerNorm\(3\) with that"):
        bp.from_torch(bp.Sequential([bp.LayerNorm(3), bp.Dense(3, 2)]), theirs.state_dict())
    ours = bp.Sequential([bp.LayerNorm(3, elementwise_affine=False), bp.Dense(3, 2)])
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    np.testing.assert_array_equal(ours.params["1.W"], theirs[1].weight.detach().numpy().T)


def test_an_error_of_one_of_several_layers_that_read_the_same_names_its_index():
    model = bp.Sequential([bp.Dense(4, 4, rng=0), bp.ReLU(), bp.Dense(4, 4, rng=1), bp.ReLU(),
                           bp.Dense(4, 2, rng=2)])
    x = np.ones((3, 4), np.float32)
    model.forward(x, training=True)
    model[2].clear_cache()
    with pytest.raises(RuntimeError, match=r"^Sequential: layer 2: Dense\(4, 4\): backward\(\) "
                                           r"needs a preceding training forward"):
        model.backward(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"^Sequential: layer 0: Dense\(4, 4\): expected input "
                                         r"of shape \(N, 4\), got \(3, 5\)"):
        model.forward(np.ones((3, 5), np.float32))
    model.forward(x, training=True)
    model[4].clear_cache()  # a layer no other reads like: its own error, as before
    with pytest.raises(RuntimeError, match=r"^Dense\(4, 2\): backward\(\) needs"):
        model.backward(np.ones((3, 2), np.float32))


@bp.register_layer
class Chain(bp.Container):
    """Takes its children as ``*blocks``, as ``nn.Sequential(*modules)``."""

    def __init__(self, *blocks, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.blocks = list(blocks)

    def children(self):
        return [(str(i), b) for i, b in enumerate(self.blocks)]

    def forward(self, x, *, training=False):
        for b in self.blocks:
            x = b.forward(x, training=training)
        return x

    def backward(self, dy):
        for b in reversed(self.blocks):
            dy = b.backward(dy)
        return dy


def test_a_container_taking_its_children_as_star_args_loads(tmp_path):
    """They were passed as one list, Chain([a, b]), and its children() then failed."""
    model = bp.Sequential([Chain(bp.Dense(4, 4, rng=0), bp.ReLU()), bp.Dense(4, 2, rng=1)])
    model.params["0.0.W"][...] = 0.25
    bp.save(model, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert [type(b) for b in loaded[0].blocks] == [bp.Dense, bp.ReLU]
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# -- a ResNet-style journey's findings -------------------------------------------------------
def test_fit_on_a_layer_or_a_container_of_ones_own_says_to_wrap_it():
    x, y = np.ones((8, 4), np.float32), np.arange(8) % 3
    for model in (bp.Dense(4, 3), Block(4)):
        with pytest.raises(TypeError, match=r"fit: expected a Sequential \(it holds the one "
                                            r"flat buffer of parameters the optimizer "
                                            r"updates\), got a (Dense|Block): wrap it, "
                                            r"bp.Sequential\(\[model\]\)"):
            bp.fit(model, x, y, loss=bp.SoftmaxCrossEntropy(),
                   optimizer=bp.SGD(model.parameters(), lr=0.1), progress=False)


class Forgets(bp.Container):
    """Uses ``fc2`` (and keeps ``spare``) without listing them in children()."""

    def __init__(self, width, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.width = width
        self.fc1, self.fc2 = bp.Dense(width, width, rng=0), bp.Dense(width, width, rng=1)
        self.acts = [bp.ReLU()]  # no parameters: nothing lost by leaving it out

    def children(self):
        return [("fc1", self.fc1)]

    def forward(self, x, *, training=False):
        return self.fc2.forward(self.fc1.forward(x, training=training), training=training)

    def backward(self, dy):
        return self.fc1.backward(self.fc2.backward(dy))


def test_a_layer_with_parameters_left_out_of_children_is_named_when_the_model_is_built():
    """In PyTorch the assignment registers it; here it was silently neither trained, saved
    nor cast."""
    with pytest.raises(ValueError, match=r"Sequential: expected Forgets.fc2, a Dense\(4, 4\) "
                                         r"with parameters, among Forgets.children\(\) \(one "
                                         r"left out is neither trained nor saved: list it "
                                         r"there, as \('fc2', self.fc2\)\)"):
        bp.Sequential([Forgets(4)])

    class InAList(Forgets):
        def __init__(self, width, *, dtype=np.float32):
            super().__init__(width, dtype=dtype)
            self.heads = [bp.Dense(width, 2, rng=3)]

        def children(self):
            return [("fc1", self.fc1), ("fc2", self.fc2)]

    with pytest.raises(ValueError, match=r"expected InAList.heads\[0\], a Dense\(4, 2\) .* as "
                                         r"\('heads.0', self.heads\[0\]\)"):
        bp.Sequential([bp.Dense(4, 4), InAList(4)])


def test_an_error_inside_a_block_names_the_path_of_the_layer_that_raised_it():
    class Slip(bp.Container):  # bn1 called without training=: no cache for its backward
        def __init__(self, c, *, dtype=np.float32):
            super().__init__(dtype=dtype)
            self.c = c
            self.bn1, self.bn2 = bp.BatchNorm(c), bp.BatchNorm(c)

        def children(self):
            return [("bn1", self.bn1), ("bn2", self.bn2)]

        def forward(self, x, *, training=False):
            return self.bn2.forward(self.bn1.forward(x), training=training)

        def backward(self, dy):
            return self.bn1.backward(self.bn2.backward(dy))

    model = bp.Sequential([bp.Dense(4, 8, rng=0), Slip(8), bp.Dense(8, 2, rng=1)])
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    model.forward(x, training=True)
    with pytest.raises(RuntimeError, match=r"^Sequential: layer 1.bn1: BatchNorm\(8\): "
                                           r"backward\(\) needs a preceding training"):
        model.backward(np.ones((6, 2), np.float32))
    nested = bp.Sequential([bp.Residual(bp.Sequential([bp.Dense(4, 4), bp.ReLU()])),
                            bp.Dense(4, 2)])
    with pytest.raises(ValueError, match=r"^Sequential: layer 0.block.0: Dense\(4, 4\): "
                                         r"expected input of shape \(N, 4\), got \(3, 5\)"):
        nested.forward(np.ones((3, 5), np.float32))
