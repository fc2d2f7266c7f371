"""The training loop, ``fit`` (and ``evaluate``/``predict``, from :mod:`._inference`).

``fit`` is the explicit step of the README run over minibatches::

    out = model.forward(xb, training=True)
    value = loss.forward(out, yb, wb)
    model.backward(loss.backward(), input_grad=False)
    optimizer.step()

with everything else (checks, validation, History, callbacks, progress bar)
kept out of that loop: inputs are checked and cast once before the first step.
Per step the loop adds one finiteness pass over the flat gradient buffer, a copy
of the (small) saved buffers such as BatchNorm's running statistics, the batch
metrics, and the loss's own O(N) checks of the batch targets.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ._claims import claimed
from ._fit_inputs import prepare_fit
from ._fit_state import (
    FitState,
    StepBuffers,
    apply_checkpoint,
    deferred_sigint,
    open_checkpoint,
    report_interrupt,
)
from ._inference import default_batch, evaluate, metric_rows, predict
from ._inference import scores as inference_scores
from ._malloc import give_back, keep_freed_memory
from ._meter import EpochMeter
from ._metric_inputs import metric_values
from ._quiet import inside
from ._validate import caller_level
from .backend import all_finite
from .callbacks import Callback
from .data import batch_indices
from .history import History
from .layers._stateful import states_kept

__all__ = ["fit", "evaluate", "predict", "FitState"]

_BAR_EVERY = 8  # progress-bar updates every few batches: tqdm's postfix is slow


# -- fit -------------------------------------------------------------------------------
def fit(model: Any, x: Any, y: Any, *, loss: Any, optimizer: Any, epochs: int = 1,
        batch_size: int | None = 32, validation_data: Any = None, validation_split: float = 0.0,
        shuffle: bool = True, drop_last: bool = False, seed: int | None = None,
        metrics: Any = (),
        callbacks: Any = (), sample_weight: Any = None, class_weight: Any = None,
        progress: bool = True, initial_epoch: int = 0, resume: Any = None,
        on_nonfinite: str = "raise") -> History:
    """Train ``model`` on ``(x, y)`` with minibatch gradient descent.

    On Linux, glibc's malloc is set to keep the memory each step frees for the next
    (``BACKPROP_MALLOC=0`` leaves it alone; see :mod:`backprop._malloc`).

    Args:
        model: A :class:`~backprop.Sequential` (or any layer with ``flat_params``).
        x: Inputs (N, ...); cast once to the model dtype. Padded sequences are masked by
            the model's own layers (``Embedding(mask_zero=True)``, ``Masking``); the loss
            is not: give padded targets ``ignore_index``, or per-step ``sample_weight``.
        y: Targets (N, ...) as the loss takes them (integer labels for
            ``SoftmaxCrossEntropy``).
        loss: A :class:`~backprop.Loss` with ``reduction`` ``'mean'`` (its default) or
            ``'sum'``: the epoch's ``loss`` is then the mean (or the sum) over all of the
            epoch's samples, and ``val_loss`` over all validation samples (with
            ``'sum'`` Keras reports the size-weighted mean of the batches' sums, which
            depends on the batch size). Sums over
            different sample counts do not compare (``loss`` against ``val_loss``, or an
            epoch with skipped batches against one without), and the progress bar shows
            the running sum. With ``sample_weight`` or ``class_weight`` the mean is
            Σ w·l / N (Keras'); a cross-entropy's own class ``weight`` divides by Σ w
            (PyTorch's), over the whole epoch too.
        optimizer: An optimizer built on ``model.parameters()``, or on some of them to
            train only those (``model[-1].parameters()``: the other layers stay frozen,
            as with a PyTorch optimizer over a subset; their gradients are still
            computed, and ``check_gradients``/``trace`` see them).
        epochs: Train until this epoch count (Keras: counted from ``initial_epoch``).
        batch_size: Samples per step (None: 32, as Keras); an epoch's last may be smaller.
        validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, w_val)``, scored
            after every epoch as ``val_loss`` and ``val_<metric>``.
        validation_split: Fraction in [0, 1) taken from the END of ``(x, y)``
            (before any shuffling, as in Keras) as validation data.
        shuffle: Draw a new order of the samples each epoch.
        drop_last: Skip each epoch's last batch when it is smaller than ``batch_size``
            (PyTorch's ``DataLoader(drop_last=True)``: a BatchNorm never gets a batch
            of 1, a stateful layer's batches all have one size); the samples it skips
            differ from epoch to epoch when shuffled.
        seed: Seed of this fit's Generator (batch order); None draws one from OS
            entropy (or from :func:`backprop.manual_seed`'s sequence). Recorded as ``history.seed``.
        metrics: Names (see :func:`backprop.metrics.get`) or callables
            ``(y_true, output) -> float``. Training values are measured in training
            mode, as Keras does: the mean over the epoch's batches, each weighted by
            its size, or, for ``r2``, ``precision``, ``recall``, ``f1`` and ``auc``,
            the value of all the epoch's samples at once (from each batch's
            statistics).
        callbacks: :class:`~backprop.Callback` instances.
        sample_weight: Per-sample loss weights (N,), or per step (N, T) (Keras'
            temporal weights; see :meth:`Loss.forward`): 0 at padded steps.
        class_weight: ``{class: weight}``; each sample's weight is multiplied by
            its class's (classes not listed weigh 1). ``"balanced"`` weighs each class
            ``n_samples / (n_classes · count)`` over the training labels, as in
            scikit-learn. Needs integer labels or one-hot rows. With ``sample_weight``
            the two multiply (Keras 2's rule; Keras 3 refuses the pair).
        progress: Show a tqdm progress bar per epoch (nothing is printed when False).
        initial_epoch: Epoch index to start from (``epochs`` counts from 0, as in Keras:
            ``initial_epoch >= epochs`` trains nothing, and warns).
        resume: A checkpoint path (or loaded :class:`~backprop.serialization.Checkpoint`)
            written by :class:`~backprop.ModelCheckpoint`: weights, optimizer state,
            batch-order and dropout Generators, History and callback states are
            restored, and training continues bit for bit to ``epochs`` (the
            checkpoint's epoch and seed replace ``initial_epoch`` and ``seed``).
            The optimizer's hyperparameters (``lr``, ``clip_norm``, ...) come from the
            checkpoint too; to train on with others, load the weights alone
            (``model.load_state_dict(bp.load(path).state_dict())``) and fit afresh.
            The callbacks must be those of the checkpointed run (same classes, same
            order); another ``batch_size``, ``shuffle``, ``drop_last`` or number of
            samples warns. A run
            EarlyStopping ended stays ended: its resume trains nothing (and warns).
        on_nonfinite: ``"raise"`` (default) stops with RuntimeError at a NaN/Inf
            loss, gradient or BatchNorm running statistic, leaving the weights (and
            BatchNorm statistics) of the last finite step; ``"skip"`` skips such
            steps, undoing their statistics, and counts them in
            ``history.skipped_batches``.

    Returns:
        The :class:`~backprop.History` of the run (``interrupted`` after Ctrl-C:
        the first Ctrl-C ends training after the current step; a second one at once,
        leaving the weights, buffers and optimizer state of the last complete step: one
        pressed during an optimizer update or while a checkpoint is loaded takes effect
        when that is done; a rate a callback set for the unfinished step stays set).

    Raises:
        ValueError, TypeError: bad arguments, before any weight changes.
        RuntimeError: a non-finite loss, gradient or statistic with
            ``on_nonfinite="raise"``; or, in either mode, weights that an earlier
            update made non-finite (those are lost: reload a checkpoint).
    """
    own = callbacks if isinstance(callbacks, (list, tuple)) else (callbacks,)
    with claimed("fit", {"model": model, "loss": loss, "optimizer": optimizer,
                         "callback": [cb for cb in own if isinstance(cb, Callback)]}):
        return _fit(model, x, y, loss, optimizer, resume, locals())


def _fit(model: Any, x: Any, y: Any, loss: Any, optimizer: Any, resume: Any,
         args: dict[str, Any]) -> History:
    data, options = prepare_fit(model, x, y, loss, optimizer, args)
    run = FitState(model, loss, optimizer, data, options.pop("callbacks"), options)
    ckpt = open_checkpoint(run, resume) if resume is not None else None
    first = run.epochs_done if ckpt is not None else options["initial_epoch"]
    if ckpt is not None and first >= run.epochs:
        warnings.warn(f"fit: the checkpoint is at epoch {first} and epochs={run.epochs}: "
                      f"nothing to train (the checkpoint's weights are loaded); epochs "
                      f"counts from 0, as in Keras (for {run.epochs} more epochs pass "
                      f"epochs={first + run.epochs})", stacklevel=caller_level())
    _record_params(run, first)
    keep_freed_memory()  # each step's arrays reused, not faulted in again: see _malloc
    try:
        with deferred_sigint(run):
            _train(run, first, ckpt)
    finally:
        give_back()
    return run.history


def _record_params(run: FitState, first: int) -> None:
    d = run.data
    run.history.seed = run.seed
    run.history.params = {
        "epochs": run.epochs, "initial_epoch": first, "batch_size": run.batch_size,
        "steps": _steps(run), "samples": d.n,
        "validation_samples": 0 if d.val is None else len(d.val[0]),
        "metrics": list(d.metric_names), "shuffle": run.shuffle, "drop_last": run.drop_last,
        "seed": run.seed,
    }


def _begin(run: FitState, ckpt: Any) -> None:
    """Hand every callback the fit, run ``on_train_begin`` (its checks come before any
    weight changes), then load a checkpoint being resumed."""
    run.model.clear_cache()  # forwards no backward followed (Monte Carlo dropout) are not
    for cb in run.user_callbacks:  # this fit's: its first backward must not warn
        cb.model, cb.optimizer, cb.fit_state = run.model, run.optimizer, run
        cb.params = run.history.params  # Keras' callback.params: epochs, steps...
        own = vars(cb).get("history")  # a History, or a Keras-style callback's own record
        if not isinstance(cb, History) and (own is None or isinstance(own, History)):
            cb.history = run.history
        elif isinstance(cb, History):
            cb.seed = run.seed
    for cb in run.callbacks:
        cb.on_train_begin({})
    if ckpt is not None:
        run.updating = True  # a second Ctrl-C waits: never a half-loaded model and optimizer
        try:
            apply_checkpoint(run, ckpt)
        finally:
            run.updating = False
        if run.deferred:
            raise KeyboardInterrupt


def _train(run: FitState, first: int, ckpt: Any) -> None:
    logs: dict[str, Any] = {}
    run.epoch = first
    try:
        _begin(run, ckpt)
        if run.stop and not run.interrupted and ckpt is not None:  # a callback's state ended it
            warnings.warn(f"fit: the checkpointed run was ended by a callback (EarlyStopping) "
                          f"after epoch {first - 1} (counted from 0): nothing to train (the "
                          f"checkpoint's weights are loaded, and on_train_end runs, as in that "
                          f"run); to train on, load the weights alone (model.load_state_dict("
                          f"bp.load(path).state_dict())) and fit afresh",
                          stacklevel=caller_level())
        for epoch in range(first, first if run.stop else run.epochs):  # ended at train begin
            epoch_logs = _run_epoch(run, epoch)
            if epoch_logs is None:  # Ctrl-C cut its batches short: on_train_end gets the
                break  # last whole epoch's logs, as Keras' (one during validation: whole)
            logs = epoch_logs
            run.epochs_done = epoch + 1
            for cb in run.callbacks:
                cb.on_epoch_end(epoch, logs)
            if run.stop:
                break
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        run.model.clear_cache()
        run.loss.clear_cache()
    if run.interrupted:
        report_interrupt(run)
    for cb in run.callbacks:
        cb.on_train_end(logs)


def _run_epoch(run: FitState, epoch: int) -> dict[str, float] | None:
    """One pass over the training data, then validation; returns the epoch's logs (None
    when Ctrl-C stopped it before its last batch's update)."""
    run.epoch, run.batch = epoch, 0
    for cb in run.callbacks:
        cb.on_epoch_begin(epoch, {})
    meter = EpochMeter(run.data.metrics, summed=run.loss.reduction == "sum")
    bar = _progress_bar(run, epoch)
    try:
        _run_batches(run, meter, bar)
        _check_last_update(run)
        if run.interrupted:
            return None
        logs = meter.logs(run.data.metric_names)
        if run.data.val is not None:
            d = run.data
            with states_kept(run.model):  # stateful layers: each batch from 0, then as before
                scores = inference_scores(run.model, d.val, run.loss, d.metrics,
                                          d.metric_names, default_batch(run.model),
                                          "fit (validation)")
            logs.update({f"val_{k}": v for k, v in scores.items()})
        if run.logs_lr:  # a rate callback's key, put in before any callback runs
            logs["lr"] = run.optimizer.lr
        if bar is not None:
            bar.update(bar.total - bar.n)
            bar.set_postfix({k: f"{logs[k]:.4g}" for k in run.log_keys}, refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return logs


def _run_batches(run: FitState, meter: EpochMeter, bar: Any) -> None:
    """The hot loop: forward, loss, backward, finiteness check, step.

    Overflow in a diverging step is reported by the finiteness check (a clear
    RuntimeError, the weights kept): NumPy's RuntimeWarnings before it would be noise,
    and with warnings as errors they would replace it, so the loop silences them. The
    callbacks' hooks and the metrics run under the caller's own settings.
    """
    outer = np.geterr()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), inside():
        _batches(run, meter, bar, outer)


def _batches(run: FitState, meter: EpochMeter, bar: Any, outer: dict[str, str]) -> None:
    model, loss, opt, grads = run.model, run.loss, run.optimizer, run.model.flat_grads
    x, y, w, begin, end = *run.data.train, run.batch_begin, run.batch_end
    metrics = [getattr(m, "partial", m) for m in run.data.metrics]  # r2, f1, auc...: statistics
    order = batch_indices(run.data.n, run.batch_size, shuffle=run.shuffle, rng=run.rng,
                          drop_last=run.drop_last)
    buffers = StepBuffers(model)
    scores: list[float] = []
    scored = 0
    for batch, idx in enumerate(order):
        run.batch = batch
        if begin:
            with np.errstate(**outer), inside(False):
                for hook in begin:
                    hook(batch, logs={})
        yb = y[idx]
        saved = False
        try:  # an error or a second Ctrl-C before the update puts this step's buffers back
            buffers.save()
            saved = True
            out = model.forward(x[idx], training=True)
            value = loss.forward(out, yb, None if w is None else w[idx])
            model.backward(loss.backward(), input_grad=False)
            if not (math.isfinite(value) and all_finite(grads) and buffers.finite()):
                buffers.restore()  # the bad batch's statistics must not outlive it
                _nonfinite(run, value, batch, all_finite(grads))  # raises, or counts a skip
                if run.stop:  # a skipped step still honours Ctrl-C and callbacks' stop
                    break
                continue
            if metrics:  # after the check: NaN outputs are fit's error (or skip), not f1's
                ym, om = metric_rows(loss, yb, out)  # (yb, out) unless the loss ignores rows
                scored = len(ym)
                with np.errstate(**outer), inside(False):
                    scores = (metric_values(metrics, run.data.metric_names, ym, om, "fit")
                              if scored else [0.0] * len(metrics))
            run.updating = True  # a second Ctrl-C now waits for the step's end
            opt.step()
        except BaseException:  # Ctrl-C, or a metric or layer failing mid-step
            if saved and not run.updating:
                run.updating = True  # a third Ctrl-C must not cut the restore short
                buffers.restore()
            raise
        finally:
            run.updating = False
        if run.deferred:  # the second Ctrl-C came during the update, now complete
            raise KeyboardInterrupt
        divisor = getattr(loss, "_last_divisor", None)  # None: a forward of its own
        meter.add(value, len(idx) if divisor is None else divisor, scores, scored)
        if bar is not None and batch % _BAR_EVERY == _BAR_EVERY - 1:
            bar.update(_BAR_EVERY)
            bar.set_postfix(loss=f"{meter.epoch_loss():.4g}", refresh=False)
        if end:
            with np.errstate(**outer), inside(False):
                for hook in end:
                    hook(batch, logs={"loss": value, "size": len(idx)})
        if run.stop:
            break


def _check_last_update(run: FitState) -> None:
    """The epoch's last update overflowing the weights: no next step would notice (its
    loss would be non-finite), so it is checked once per epoch, before validation."""
    flat = run.model.flat_params
    if flat is not None and not all_finite(flat):
        raise _weights_lost(run, "after the last update of", "it overflowed them")


def _weights_lost(run: FitState, where: str, cause: str) -> RuntimeError:
    return RuntimeError(
        f"fit: expected finite weights, got non-finite ones {where} epoch {run.epoch}, batch "
        f"{run.batch} (both counted from 0): {cause} (learning rate far too large?; fit "
        "checked them finite when it started), so the last finite weights are gone and "
        "skipping cannot help. Reload a checkpoint's weights (model.load_state_dict("
        "bp.load(path).state_dict()); fit(resume=) would restore its learning rate too) and "
        "fit again with a lower learning rate.")


def _nonfinite(run: FitState, value: float, batch: int, grads_finite: bool) -> None:
    if not np.isfinite(run.model.flat_params).all():  # off the hot path: failures only
        raise _weights_lost(run, "at", "the update after the previous batch overflowed them")
    if run.on_nonfinite == "skip":
        run.history.skipped_batches += 1
        return
    what = (f"loss ({value})" if not math.isfinite(value)
            else f"gradient norm (the loss, {value:.6g}, is finite)" if not grads_finite
            else "BatchNorm running statistic (an activation overflowed; the loss, "
                 f"{value:.6g}, and the gradients are finite)")
    raise RuntimeError(
        f"fit: expected a finite loss, gradient and statistics, got a non-finite {what} at epoch "
        f"{run.epoch}, batch {run.batch} (both counted from 0). Training stopped before "
        "this step, so the model keeps its last finite weights. Lower the learning rate, "
        "clip gradients (clip_norm=...), or pass on_nonfinite='skip'.")


def _progress_bar(run: FitState, epoch: int) -> Any:
    if not run.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=_steps(run), desc=f"Epoch {epoch + 1}/{run.epochs}",
                unit="batch", leave=True, dynamic_ncols=True)


def _steps(run: FitState) -> int:
    """Batches per epoch."""
    n, size = run.data.n, run.batch_size
    return n // size if run.drop_last else -(-n // size)
