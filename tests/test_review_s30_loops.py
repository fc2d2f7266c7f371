"""Session 30 review: whole training loops against PyTorch's, float64, from the same
initial weights (``from_torch``): the loss at every step, the final weights, BatchNorm
statistics and eval-mode outputs. No defect was found; these keep the loops checked.

Two parameters are compared loosely, on purpose: a bias whose gradient is zero in exact
arithmetic (a Dense/convolution bias right before a BatchNorm, the key part of an
attention's ``b_in``: softmax is shift invariant) gets gradients of rounding noise only,
~1e-17, which Adam and RMSprop divide by their own running size, so that the two
libraries' different noise moves it by up to ~1e-6 while every loss agrees to ~1e-14."""

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional
f64 = np.float64


@pytest.fixture(autouse=True)
def torch_float64():
    """torch's modules and scalar optimizer state in float64, as ours; its init seeded."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(before)


def _loaded(bm, tm):
    bm.load_state_dict(bp.from_torch(bm, tm.state_dict()))
    return bm


def _step_both(tm, topt, bm, bopt, x, y, clip=None):
    """One explicit step in each library; returns (ours, torch's) loss before it."""
    topt.zero_grad()
    lt = F.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
    lt.backward()
    loss = bp.SoftmaxCrossEntropy()
    lb = loss.forward(bm.forward(x, training=True), y)
    bm.backward(loss.backward(), input_grad=False)
    if clip is not None:
        clip(tm, bm)
    topt.step()
    bopt.step()
    return lb, lt.item()


def _assert_weights(bm, tm, loose=(), rtol=1e-12, skip=()):
    """Every array of ``bm.state_dict()`` (buffers too) against torch's, converted."""
    theirs = bp.from_torch(bm, tm.state_dict())
    for k, v in bm.state_dict().items():
        if k.endswith("num_batches_tracked") or k in skip:
            continue
        tol = 1e-5 if k in loose else rtol
        np.testing.assert_allclose(v, theirs[k], rtol=tol, atol=1e-5 if k in loose else
                                   rtol * 1e-2, err_msg=k)


def test_mlp_batchnorm_dropout_sgd_nesterov_steplr_loop_and_eval_mode_match_torch():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 10)), rng.integers(0, 4, 64)
    tm = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.0),
                       nn.Linear(32, 4))
    bm = _loaded(bp.Sequential([bp.Dense(10, 32, dtype=f64), bp.BatchNorm(32, dtype=f64),
                                bp.ReLU(), bp.Dropout(0.0), bp.Dense(32, 4, dtype=f64)]), tm)
    kw = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    topt, bopt = torch.optim.SGD(tm.parameters(), **kw), bp.SGD(bm.parameters(), **kw)
    tsched, bsched = torch.optim.lr_scheduler.StepLR(topt, 10, 0.5), bp.StepLR(0.1, 10, 0.5)
    for step in range(40):
        bopt.lr = bsched(step)
        assert bopt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-15)
        lb, lt = _step_both(tm, topt, bm, bopt, x, y)
        tsched.step()
        assert lb == pytest.approx(lt, rel=1e-12), step
    _assert_weights(bm, tm)  # running_mean / running_var included
    tm.eval()
    with torch.no_grad():
        te = tm(torch.tensor(x)).numpy()
    for ours in (bm.predict(x), bm.predict(x, batch_size=7), bm(x)):  # running statistics
        np.testing.assert_allclose(ours, te, rtol=1e-12, atol=1e-13)
    ev = bm.evaluate(x, y, loss=bp.SoftmaxCrossEntropy())["loss"]
    assert ev == pytest.approx(F.cross_entropy(torch.tensor(te), torch.tensor(y)).item(),
                               rel=1e-12)
    dropped = bp.Sequential([bp.Dense(10, 8, dtype=f64, rng=0), bp.Dropout(0.5, rng=1)])
    plain = dropped.predict(x)  # inference: identity; training: 0 or x / (1 - p)
    np.testing.assert_array_equal(dropped.predict(x), plain)
    train = dropped.forward(x, training=True)
    np.testing.assert_allclose(train[train != 0], 2 * plain[train != 0], rtol=1e-15)


def test_cnn_batchnorm_adam_cosine_with_clip_norm_each_step_matches_torch():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 2, 10, 10)), rng.integers(0, 3, 16)
    tm = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Conv2d(6, 8, 3), nn.ReLU(),
                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    bm = _loaded(bp.Sequential([
        bp.Conv2D(2, 6, 3, padding=1, dtype=f64), bp.BatchNorm(6, dtype=f64), bp.ReLU(),
        bp.MaxPool2D(2, dtype=f64), bp.Conv2D(6, 8, 3, dtype=f64), bp.ReLU(),
        bp.AdaptiveAvgPool2D(1, dtype=f64), bp.Flatten(), bp.Dense(8, 3, dtype=f64)]), tm)
    topt = torch.optim.Adam(tm.parameters(), lr=0.01, weight_decay=1e-4)
    bopt = bp.Adam(bm.parameters(), lr=0.01, weight_decay=1e-4)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=12, eta_min=1e-4)
    bsched = bp.CosineAnnealingLR(0.01, T_max=12, eta_min=1e-4)  # run past T_max too
    norms = []

    def clip(tm, bm):
        norms.append((bp.clip_grad_norm(bm.parameters(), 0.2),
                      nn.utils.clip_grad_norm_(tm.parameters(), 0.2).item()))

    for step in range(30):
        bopt.lr = bsched(step)
        assert bopt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-14, abs=1e-18)
        lb, lt = _step_both(tm, topt, bm, bopt, x, y, clip)
        tsched.step()
        assert lb == pytest.approx(lt, rel=1e-12), step
    np.testing.assert_allclose(*np.transpose(norms), rtol=1e-12)
    assert max(n for n, _ in norms) > 0.2  # the clipping acted
    # 0.b feeds the BatchNorm (zero gradient; see the module docstring), and the mean
    # running statistic follows it
    _assert_weights(bm, tm, loose=("0.b", "1.running_mean"))
    tm.eval()
    with torch.no_grad():
        te = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(bm.predict(x), te, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_recurrent_classifier_adamw_onecycle_clip_value_loop_matches_torch(kind):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((12, 7, 5)), rng.integers(0, 3, 12)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = getattr(nn, kind)(5, 9, batch_first=True), nn.Linear(9, 3)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    tm = Net()
    bm = _loaded(bp.Sequential([getattr(bp, kind)(5, 9, return_sequences=False, dtype=f64),
                                bp.Dense(9, 3, dtype=f64)]), tm)
    topt = torch.optim.AdamW(tm.parameters(), lr=0.01, weight_decay=0.05)
    bopt = bp.AdamW(bm.parameters(), lr=0.01, weight_decay=0.05)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.05, total_steps=40)
    bsched = bp.OneCycleLR(0.05, total_steps=40)

    def clip(tm, bm):
        nn.utils.clip_grad_value_(tm.parameters(), 0.05)
        bp.clip_grad_value(bm.parameters(), 0.05)

    for step in range(40):
        bopt.lr, bopt.beta1 = bsched(step), bsched.momentum(step)  # what fit's callback sets
        group = topt.param_groups[0]
        assert (bopt.lr, bopt.beta1) == pytest.approx((group["lr"], group["betas"][0]),
                                                      rel=1e-14)
        lb, lt = _step_both(tm, topt, bm, bopt, x, y, clip)
        tsched.step()
        assert lb == pytest.approx(lt, rel=1e-11), step
    _assert_weights(bm, tm, rtol=1e-11)


@pytest.mark.parametrize("norm_first, optimizer", [(False, "RMSprop"), (True, "Adagrad")])
def test_transformer_encoder_layer_rmsprop_adagrad_loop_matches_torch(norm_first, optimizer):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 6, 16)), rng.integers(0, 3, 8)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True,
                                                  norm_first=norm_first)
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc(self.enc(x).mean(1))

    tm = Net()
    bm = _loaded(bp.Sequential([
        bp.TransformerEncoderLayer(16, 4, 32, dropout=0.0, norm_first=norm_first, dtype=f64),
        bp.GlobalAvgPool(channels_last=True, dtype=f64), bp.Dense(16, 3, dtype=f64)]), tm)
    kw = (dict(lr=3e-3, momentum=0.5, centered=True, weight_decay=1e-3)
          if optimizer == "RMSprop" else
          dict(lr=3e-2, lr_decay=1e-2, weight_decay=1e-3, initial_accumulator_value=0.1))
    topt = getattr(torch.optim, optimizer)(tm.parameters(), **kw)
    bopt = getattr(bp, optimizer)(bm.parameters(), **kw)
    for step in range(30):
        lb, lt = _step_both(tm, topt, bm, bopt, x, y)
        assert lb == pytest.approx(lt, rel=1e-11), step
    b_in = "0.0.block.1.b_in" if norm_first else "0.0.block.0.b_in"
    _assert_weights(bm, tm, rtol=1e-11, skip=(b_in,))
    theirs = bp.from_torch(bm, tm.state_dict())[b_in]  # queries' and values' parts: exact
    ours = bm.state_dict()[b_in]
    np.testing.assert_allclose(ours[:16], theirs[:16], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(ours[32:], theirs[32:], rtol=1e-11, atol=1e-13)
    # the keys' part starts at 0 (PyTorch's init) and gets only rounding noise as its
    # gradient: in both it stays near 0, each at its own noise
    assert np.abs(ours[16:32]).max() < 1e-3 and np.abs(theirs[16:32]).max() < 1e-3
    tm.eval()
    with torch.no_grad():
        te = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(bm.predict(x), te, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["plain", "class_weight", "sample_weight", "loss_weight"])
def test_fit_with_partial_last_batch_and_weights_matches_a_torch_loop(mode):
    """fit(shuffle=False) over 50 samples in batches of 16 (the last one of 2), against
    torch over the same batches: the weights, and the epoch loss as documented: Σ w·l / N
    for sample_weight and class_weight (Keras'), Σ w·l / Σ w for the loss's class
    ``weight`` (PyTorch's), over the whole epoch."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((50, 6)), rng.integers(0, 3, 50)
    class_w, sw = np.array([2.0, 1.0, 0.5]), rng.uniform(0.2, 2.0, 50)
    tm = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))
    bm = _loaded(bp.Sequential([bp.Dense(6, 12, dtype=f64), bp.Tanh(),
                                bp.Dense(12, 3, dtype=f64)]), tm)
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    bopt = bp.SGD(bm.parameters(), lr=0.1, momentum=0.9)
    loss = bp.SoftmaxCrossEntropy(weight=class_w if mode == "loss_weight" else None)
    kw = {"class_weight": {0: 2.0, 2: 0.5}} if mode == "class_weight" else (
        {"sample_weight": sw} if mode == "sample_weight" else {})
    history = bm.fit(x, y, loss=loss, optimizer=bopt, epochs=3, batch_size=16,
                     shuffle=False, progress=False, **kw)
    epoch_losses = []
    for _ in range(3):
        total = count = 0.0
        for s in range(0, 50, 16):
            xb, yb = torch.tensor(x[s:s + 16]), torch.tensor(y[s:s + 16])
            topt.zero_grad()
            per = F.cross_entropy(tm(xb), yb, reduction="none")
            w = {"plain": torch.ones(len(yb)), "sample_weight": torch.tensor(sw[s:s + 16])}.get(
                mode, torch.tensor(class_w)[yb])
            batch = (w * per).sum() / (w.sum() if mode == "loss_weight" else len(yb))
            batch.backward()
            topt.step()
            total += (w * per).sum().item()
            count += w.sum().item() if mode == "loss_weight" else len(yb)
        epoch_losses.append(total / count)
    np.testing.assert_allclose(history.history["loss"], epoch_losses, rtol=1e-13)
    _assert_weights(bm, tm)
