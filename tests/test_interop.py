"""from_torch: a PyTorch module's weights into the same backprop model."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def test_a_torch_cnn_gives_the_same_outputs_after_from_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    nn = torch.nn
    theirs = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                           nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 16), nn.LayerNorm(16),
                           nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3)).double()
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8))
    theirs(torch.tensor(x))  # a training step's running statistics, then inference
    theirs.eval()
    ours = bp.Sequential(bp.Conv2D(1, 4, 3, padding=1), bp.BatchNorm(4), bp.ReLU(),
                         bp.MaxPool2D(2), bp.Flatten(), bp.Dense(64, 16), bp.LayerNorm(16),
                         bp.ReLU(), bp.Dense(16, 3)).astype(np.float64)
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    np.testing.assert_allclose(ours.predict(x), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    bn = bp.BatchNorm(4, momentum=None)  # the one BatchNorm that keeps the batch count
    state = bp.from_torch(bn, nn.BatchNorm2d(4, momentum=None).state_dict())
    assert sorted(state) == ["beta", "gamma", "num_batches_tracked", "running_mean",
                             "running_var"]
    bn.load_state_dict(state)


def test_from_torch_maps_prelu_weights():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    nn = torch.nn
    theirs = nn.Sequential(nn.Conv2d(1, 4, 3), nn.PReLU(4, init=0.1), nn.Flatten(),
                           nn.Linear(16, 3), nn.PReLU()).double()
    with torch.no_grad():
        theirs[1].weight.uniform_(-0.5, 0.5)
        theirs[4].weight.fill_(-0.7)  # both slopes away from the default 0.25
    ours = bp.Sequential(bp.Conv2D(1, 4, 3), bp.PReLU(4), bp.Flatten(), bp.Dense(16, 3),
                         bp.PReLU()).astype(np.float64)
    ours.load_state_dict(bp.from_torch(ours, theirs.state_dict()))
    assert ours.params["4.alpha"][0] == -0.7
    x = np.random.default_rng(0).standard_normal((5, 1, 4, 4))
    np.testing.assert_allclose(ours.predict(x), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_from_torch_reads_numpy_arrays_with_torchs_names_and_layouts():
    rng = np.random.default_rng(1)
    weight, bias = rng.standard_normal((3, 5)), rng.standard_normal(3)  # Linear(5, 3)
    layer = bp.Dense(5, 3, dtype=np.float64)
    layer.load_state_dict(bp.from_torch(layer, {"weight": weight, "bias": bias}))
    x = rng.standard_normal((2, 5))
    np.testing.assert_allclose(layer.forward(x), x @ weight.T + bias)


def test_from_torch_names_what_does_not_pair():
    model = bp.Sequential(bp.Dense(4, 3), bp.ReLU(), bp.Dense(3, 2))
    with pytest.raises(ValueError, match=r"from_torch: expected 2 PyTorch modules with weights "
                                         r"\(for Dense\(4, 3\), Dense\(3, 2\)\), got 1: \['0'\]"):
        bp.from_torch(model, {"0.weight": np.zeros((3, 4)), "0.bias": np.zeros(3)})
    with pytest.raises(ValueError, match=r"expected a PyTorch module matching 1 -> 2 Dense\(3, "
                                         r"2\), got one with \['bias', 'running_mean'"):
        bp.from_torch(model, {"0.weight": np.zeros((3, 4)), "0.bias": np.zeros(3),
                              "1.running_mean": np.zeros(2), "1.bias": np.zeros(2)})
    with pytest.raises(TypeError, match=r"from_torch: expected a PyTorch state dict"):
        bp.from_torch(model, [np.zeros(3)])


def test_from_torch_refuses_a_bias_the_layer_does_not_have():
    with pytest.raises(ValueError, match=r"from_torch: expected the PyTorch module for \(top\) "
                                         r"Dense\(4, 4, bias=False\) without 'bias'"):
        bp.from_torch(bp.Dense(4, 4, bias=False), {"weight": np.zeros((4, 4)),
                                                   "bias": np.zeros(4)})


def test_from_torch_pairs_an_nn_sequentials_layers_by_index_not_by_dict_order():
    """A sorted state dict puts "10." before "2.": the layers still pair by index."""
    rng = np.random.default_rng(0)
    model = bp.Sequential([layer for _ in range(6) for layer in (bp.Dense(3, 3), bp.ReLU())])
    theirs = {f"{2 * i}.{name}": rng.standard_normal((3, 3) if name == "weight" else 3)
              for i in range(6) for name in ("weight", "bias")}
    mapped = bp.from_torch(model, dict(sorted(theirs.items())))
    for i in range(6):
        np.testing.assert_array_equal(mapped[f"{2 * i}.W"], theirs[f"{2 * i}.weight"].T)
        np.testing.assert_array_equal(mapped[f"{2 * i}.b"], theirs[f"{2 * i}.bias"])


def test_from_torch_refuses_numbered_modules_out_of_order_under_a_named_one():
    model = bp.Sequential([bp.Sequential([bp.Dense(2, 2) for _ in range(11)])])
    theirs = {f"features.{i}.{name}": np.zeros((2, 2) if name == "weight" else 2)
              for i in range(11) for name in ("weight", "bias")}
    model.load_state_dict(bp.from_torch(model, theirs))
    with pytest.raises(ValueError, match=r"expected the state dict in module order, got "
                                         r"'features\.2' after 'features\.10'"):
        bp.from_torch(model, dict(sorted(theirs.items())))


def test_from_torch_names_its_arguments_order():
    with pytest.raises(TypeError, match=r"expected a backprop model or layer first, got str"):
        bp.from_torch("model", {})


def test_from_torch_reads_bfloat16_weights_exactly():
    """NumPy has no bfloat16: torch's own error named neither from_torch nor a fix."""
    torch = pytest.importorskip("torch")
    linear = torch.nn.Linear(8, 4).to(torch.bfloat16)
    for dtype in (np.float32, np.float64):
        model = bp.Sequential([bp.Dense(8, 4, dtype=dtype)])
        model.load_state_dict(bp.from_torch(model, linear.state_dict()))
        np.testing.assert_array_equal(model[0].params["W"],
                                      linear.weight.detach().float().numpy().T)
        np.testing.assert_array_equal(model[0].params["b"], linear.bias.detach().float().numpy())
