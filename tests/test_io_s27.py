"""Bad inputs to the save/load/checkpoint API (review s27): an optimizer over another
model's parameters is refused at save time, from_torch names PyTorch's key and shapes,
and file errors name the function called and the path, as OSErrors where the OS says so."""

from __future__ import annotations

import errno
import os
import pathlib

import numpy as np
import pytest

import backprop as bp
from backprop import _atomic


def _net(hidden: int = 3) -> bp.Sequential:
    return bp.Sequential([bp.Dense(4, hidden, rng=0), bp.ReLU(), bp.Dense(hidden, 2, rng=1)])


def _trained(model: bp.Sequential, opt: bp.Optimizer) -> None:
    x, y = np.ones((4, 4), np.float32), np.array([0, 1, 0, 1])
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=opt, epochs=1, progress=False)


# -- 1. the optimizer saved must train the model saved ---------------------------------------


def test_save_refuses_an_optimizer_over_another_models_parameters(tmp_path):
    model, other = _net(), bp.Sequential([bp.Dense(5, 7, rng=0), bp.Dense(7, 2, rng=1)])
    with pytest.raises(ValueError, match=r"^save\('.*m\.npz'\): the optimizer's parameters are "
                                         r"not this model's: '0\.W' \(5, 7\) float32, '0\.b' "
                                         r"\(7,\) float32, '1\.W' \(7, 2\) float32 match none of "
                                         r"its parameters by shape \(it has '0\.W' \(4, 3\) "
                                         r"float32, .*Nothing was written$"):
        model.save(tmp_path / "m.npz", optimizer=bp.Adam(other.parameters()))
    assert not (tmp_path / "m.npz").exists()


def test_save_refuses_an_optimizer_over_a_layer_of_another_model(tmp_path):
    model, other = _net(), _net(hidden=5)
    with pytest.raises(ValueError, match=r"the optimizer's parameters are not this model's: "
                                         r"'W' \(4, 5\) float32, 'b' \(5,\) float32 match"):
        bp.save(model, tmp_path / "m.npz", optimizer=bp.SGD(other[0].parameters(), lr=0.1))


def test_save_refuses_the_state_dict_of_another_models_optimizer(tmp_path):
    model, other = _net(), _net(hidden=5)
    opt = bp.Adam(other.parameters())
    with pytest.raises(ValueError, match=r"the optimizer's parameters are not this model's: "
                                         r"'0\.W' \(4, 5\) float32, '0\.b' \(5,\) float32, "
                                         r"'2\.W' \(5, 2\) float32 match none of its "
                                         r"parameters by shape \(it has"):
        model.save(tmp_path / "m.npz", optimizer=opt.state_dict())
    assert not (tmp_path / "m.npz").exists()


def test_save_refuses_an_optimizer_over_more_parameters_than_the_model_has(tmp_path):
    model = bp.Sequential([bp.Dense(3, 3, rng=0)])
    bigger = bp.Sequential([bp.Dense(3, 3, rng=0), bp.Dense(3, 3, rng=1)])
    with pytest.raises(ValueError, match=r"not this model's: '1\.W' \(3, 3\) float32, '1\.b' "
                                         r"\(3,\) float32 match none"):
        model.save(tmp_path / "m.npz", optimizer=bp.SGD(bigger.parameters(), lr=0.1))


def test_save_refuses_a_model_given_as_the_optimizer(tmp_path):
    model = _net()
    with pytest.raises(TypeError, match=r"save: expected optimizer as an optimizer or its "
                                        r"state_dict\(\), got a model, Sequential"):
        model.save(tmp_path / "m.npz", optimizer=model)  # its state_dict() is its weights


@pytest.mark.parametrize("part", ["all", "last layer", "first layer", "groups", "state dict",
                                  "twin"])
def test_save_takes_an_optimizer_over_the_model_or_any_part_of_it(tmp_path, part):
    model = _net()
    params = {"all": model.parameters(), "last layer": model[2:].parameters(),
              "first layer": model[0].parameters(), "state dict": model.parameters(),
              "groups": [{"params": model[0].parameters(), "lr": 0.5},
                         {"params": model[2].parameters()}],
              "twin": _net().parameters()}[part]  # an equal model's: same names and shapes
    opt = bp.Adam(params, lr=0.01)
    if part != "twin":
        _trained(model, opt)
    saved = opt.state_dict() if part == "state dict" else opt
    model.save(tmp_path / "m.npz", optimizer=saved)
    ckpt = bp.load_checkpoint(tmp_path / "m.npz")
    again = {"all": ckpt.model.parameters(), "state dict": ckpt.model.parameters(),
             "last layer": ckpt.model[2:].parameters(),
             "first layer": ckpt.model[0].parameters(),
             "groups": [{"params": ckpt.model[0].parameters(), "lr": 0.5},
                        {"params": ckpt.model[2].parameters()}],
             "twin": ckpt.model.parameters()}[part]
    fresh = bp.Adam(again, lr=0.01)
    fresh.load_state_dict(ckpt.optimizer_state)
    assert fresh.steps == opt.steps


# -- 2. from_torch checks shapes, in PyTorch's names ------------------------------------------


def _linear_state(shapes):
    return {k: np.zeros(s, np.float32) for k, s in shapes.items()}


def test_from_torch_names_the_torch_key_and_both_shapes():
    model = _net()
    state = _linear_state({"0.weight": (3, 4), "0.bias": (3,), "2.weight": (5, 3),
                           "2.bias": (5,)})
    with pytest.raises(ValueError, match=r"^from_torch: expected '2\.weight' of shape \(2, 3\) "
                                         r"for 2\.W of Dense\(3, 2\), got shape \(5, 3\)$"):
        bp.from_torch(model, state)


def test_from_torch_says_a_weight_in_backprops_layout_is_transposed():
    state = _linear_state({"0.weight": (4, 3), "0.bias": (3,), "2.weight": (2, 3),
                           "2.bias": (2,)})
    with pytest.raises(ValueError, match=r"expected '0\.weight' of shape \(3, 4\) for 0\.W of "
                                         r"Dense\(4, 3\), got shape \(4, 3\): backprop's \(in, "
                                         r"out\) layout, not PyTorch's \(out, in\)"):
        bp.from_torch(_net(), state)


def test_from_torch_refuses_an_entry_that_holds_no_numbers():
    state = {**_linear_state({"0.weight": (3, 4), "2.weight": (2, 3), "2.bias": (2,)}),
             "0.bias": np.array(["a", "b", "c"])}
    with pytest.raises(TypeError, match=r"from_torch: expected '0\.bias' as numbers for 0\.b "
                                        r"of Dense\(4, 3\), got dtype <U1"):
        bp.from_torch(_net(), state)


def test_from_torch_names_the_key_of_a_stacked_or_reverse_recurrent_layer():
    torch = pytest.importorskip("torch")
    two = torch.nn.LSTM(4, 6, num_layers=2).state_dict()
    two["weight_hh_l1"] = torch.zeros(24, 5)
    with pytest.raises(ValueError, match=r"expected 'weight_hh_l1' of shape \(24, 6\) for "
                                         r"1\.U of LSTM\(6, 6\), got shape \(24, 5\)"):
        bp.from_torch(bp.Sequential([bp.LSTM(4, 6), bp.LSTM(6, 6)]), two)
    both = torch.nn.GRU(4, 6, bidirectional=True).state_dict()
    both["bias_ih_l0_reverse"] = torch.zeros(17)
    with pytest.raises(ValueError, match=r"expected 'bias_ih_l0_reverse' of shape \(18,\) for "
                                         r"backward_layer\.b of GRU\(4, 6\), got shape \(17,\)"):
        bp.from_torch(bp.Bidirectional(bp.GRU(4, 6)), both)


def test_from_torch_checks_a_torch_module_of_another_width_and_still_loads_the_same_one():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 5))
    model = _net()
    with pytest.raises(ValueError, match=r"expected '2\.weight' of shape \(2, 3\) for 2\.W"):
        bp.from_torch(model, theirs.state_dict())
    norm = torch.nn.BatchNorm1d(3, momentum=None).state_dict()
    norm["num_batches_tracked"] = torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"expected 'num_batches_tracked' of shape \(\) for "
                                         r"num_batches_tracked of BatchNorm\(3, momentum=None\)"):
        bp.from_torch(bp.BatchNorm(3, momentum=None), norm)
    same = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    model.load_state_dict(bp.from_torch(model, same.state_dict()))
    np.testing.assert_array_equal(model[2].params["W"], same[2].weight.detach().numpy().T)


# -- 3. file errors name the function and the path --------------------------------------------


def test_load_checkpoint_names_itself_not_load(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_checkpoint\('.*nope\.npz'\): no such "
                                                r"file$") as info:
        bp.load_checkpoint(tmp_path / "nope.npz")
    assert info.value.errno == errno.ENOENT
    with pytest.raises(IsADirectoryError, match=r"load_checkpoint\('.*'\): expected a file, got "
                                                r"a folder$"):
        bp.load_checkpoint(tmp_path)
    with pytest.raises(TypeError, match=r"^load_checkpoint: expected path as a str or "
                                        r"os\.PathLike, got NoneType None$"):
        bp.load_checkpoint(None)
    (tmp_path / "t.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"^load_checkpoint\('.*t\.npz'\): expected a complete "
                                         r"backprop \.npz .* truncated, corrupt"):
        bp.load_checkpoint(tmp_path / "t.npz")
    with pytest.raises(ValueError, match=r"^load\('.*t\.npz'\): expected a complete"):
        bp.load(tmp_path / "t.npz")  # load still says load


def test_load_names_a_file_that_is_no_backprop_file(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    with pytest.raises(ValueError, match=r"^load\('.*plain\.npz'\): expected a backprop model "
                                         r"file with a 'header' array, got arrays \['a'\]$"):
        bp.load(tmp_path / "plain.npz")
    (tmp_path / "m.txt").write_text("weights")
    with pytest.raises(ValueError, match=r"load\('.*m\.txt'\): .* not a zip archive"):
        bp.load(tmp_path / "m.txt")
    with pytest.raises(TypeError, match=r"^load: expected path as a str or os\.PathLike, got "
                                        r"int 3$"):
        bp.load(3)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_load_refuses_a_fifo_instead_of_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match=r"^load\('.*pipe'\): expected a complete backprop \.npz "
                                         r"of plain arrays in a regular file, got a device, FIFO "
                                         r"or socket$"):
        bp.load(tmp_path / "pipe")  # used to say "no such file"


def test_a_folder_that_cannot_be_searched_is_a_named_permission_error(tmp_path, monkeypatch):
    """(As root every folder is searchable: the OS's answer is stood in for.)"""
    real = pathlib.Path.stat
    locked = tmp_path / "locked"

    def stat(self, *args, **kwargs):
        if locked in self.parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(pathlib.Path, "stat", stat)
    with pytest.raises(PermissionError, match=r"^\[Errno 13\] load_checkpoint\('.*locked/m"
                                              r"\.npz'\): cannot read the file \(Permission "
                                              r"denied\)$"):
        bp.load_checkpoint(locked / "m.npz")
    with pytest.raises(PermissionError, match=r"^\[Errno 13\] save: cannot write '.*locked/m\.npz' "
                                              r"\(Permission denied\)$"):
        _net().save(locked / "m.npz")


def test_save_errors_name_save_the_path_and_keep_os_error_types(tmp_path):
    model = _net()
    with pytest.raises(IsADirectoryError, match=r"save: expected a file path, got the folder "
                                                r"'.*'$") as info:
        model.save(tmp_path)
    assert info.value.errno == errno.EISDIR
    with pytest.raises(FileNotFoundError, match=r"save: expected '.*nope/m\.npz' in an existing "
                                                r"folder, got no folder '.*nope'$"):
        model.save(tmp_path / "nope" / "m.npz")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"save: expected '.*file/m\.npz' in a folder, "
                                                 r"got '.*file', which is a file$") as info:
        model.save(tmp_path / "file" / "m.npz")  # used to say "got no folder"
    assert info.value.errno == errno.ENOTDIR
    with pytest.raises(TypeError, match=r"^save: expected path as a str or os\.PathLike, got "
                                        r"NoneType None$"):
        model.save(None)


def test_a_save_interrupted_mid_write_leaves_the_previous_file(tmp_path, monkeypatch):
    model = _net()
    path = tmp_path / "m.npz"
    model.save(path)
    before = path.read_bytes()

    def killed(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt
    monkeypatch.setattr(_atomic.np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        _net(hidden=5).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temporary left
    monkeypatch.undo()
    np.testing.assert_array_equal(bp.load(path)[0].params["W"], model[0].params["W"])


def test_model_checkpoint_says_its_folder_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    model = _net()
    with pytest.raises(ValueError, match=r"ModelCheckpoint: expected path in an existing folder, "
                                         r"got '.*file/c\.npz', whose folder '.*file' is a file$"):
        _trained_with(model, bp.ModelCheckpoint(str(tmp_path / "file" / "c.npz")))


def _trained_with(model, callback):
    x, y = np.ones((4, 4), np.float32), np.array([0, 1, 0, 1])
    model.fit(x, y, loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(model.parameters(), lr=0.1),
              epochs=1, progress=False, callbacks=[callback])


def test_load_mnist_names_a_file_given_as_its_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"^\[Errno 20\] load_mnist: expected a folder "
                                                 r"of MNIST IDX files, got '.*f', a file$"):
        bp.datasets.load_mnist(tmp_path / "f")
    with pytest.raises(FileNotFoundError, match=r"load_mnist: expected a folder of MNIST IDX "
                                                r"files, got '.*nope', which does not exist$"):
        bp.datasets.load_mnist(tmp_path / "nope")


def test_resume_from_a_plain_save_names_the_file(tmp_path):
    model = bp.Sequential([bp.Dense(2, 1, rng=0)])
    model.save(tmp_path / "plain.npz")  # no optimizer, no training state
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 1), np.float32)
    with pytest.raises(ValueError, match=r"fit: expected resume '.*plain\.npz' to be a "
                                         r"checkpoint written by ModelCheckpoint"):
        model.fit(x, y, loss=bp.MeanSquaredError(), optimizer=bp.SGD(model.parameters(),
                                                                     lr=0.1),
                  resume=tmp_path / "plain.npz", progress=False)
