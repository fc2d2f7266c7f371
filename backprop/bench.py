"""How fast does a model train, and how far is that from the GEMM bound?

:func:`bench` times one training step of a model on random data,

::

    out = model.forward(x, training=True)      # x (batch_size, *input_shape)
    loss.forward(out, target)
    model.backward(loss.backward(), input_grad=False)
    optimizer.step()

and puts it beside the **GEMM bound**: the time of only the matrix products that
step runs (``model.gemm_shapes``), each run as ``np.matmul(a, b, out=c)`` on
preallocated arrays. They are the layers' own products, as the step runs them: a
convolution's are those of its im2col layout, with the bias as one more row; a stride-1
one packed over its padded input (``_packed``) also computes the junk columns between
rows and images, in the forward, ``dW`` and the nine ``dx`` products. For the benchmark
CNN that is 11 % (the first convolution: its bias row) and 15 % (the second) more than
the bare im2col arithmetic, so its fraction of the bound reads about that much higher
than against the bare products. A user's layer without ``gemm_shapes`` counts none (the
result then says so), and a user's container counts its children's (one forward on
zeros finds their shapes). Nearly all of a network's arithmetic is in
those products, so ``gemm_fraction = gemm_time / step_time`` says how much of the step is spent
on work BLAS cannot do faster; the rest (activations, the loss, the optimizer,
im2col copies, Python) is what the per-layer breakdown shows.

Everything runs on a copy of the model and optimizer: the caller's weights,
gradients and optimizer state are left exactly as they were. The steps run with
``fit``'s malloc settings (see ``backprop/_malloc.py``), so a step's multi-MiB arrays
are reused as in training, not faulted in again each step; like ``fit``, the first call
sets them for the rest of the process (``BACKPROP_MALLOC=0`` leaves malloc alone).
"""

from __future__ import annotations

import copy
import statistics
from time import perf_counter
from typing import Any

import numpy as np

from . import _openblas
from ._bench_result import BenchResult, LayerTime
from ._bench_targets import target_for
from ._fit_inputs import check_reduced, trained_positions
from ._malloc import give_back, keep_freed_memory
from ._quiet import inside
from ._validate import boolean, nonneg_int, positive_int, sample_shape
from .gemm import gemm_flops, gemm_time
from .layers.base import Layer
from .layers.embedding import index_layer
from .losses import Loss, MeanSquaredError, SoftmaxCrossEntropy
from .optimizers import SGD, Optimizer
from .optimizers.groups import regroup
from .sequential import Sequential

__all__ = ["bench", "BenchResult", "LayerTime", "gemm_time"]


def bench(model: Layer, input_shape: tuple[int, ...] | int, batch_size: int = 32, *,
          loss: Loss | None = None, optimizer: Optimizer | None = None, steps: int = 20,
          repeats: int = 5, warmup: int = 3, breakdown: bool = True,
          seed: int = 0) -> BenchResult:
    """Time a training step of ``model`` and compare it with its GEMM bound.

    Args:
        model: A :class:`~backprop.Sequential` (or a single layer).
        input_shape: Shape of one sample, without the batch axis (``(784,)``,
            ``(1, 28, 28)``); a bare int ``n`` means ``(n,)``, a list a tuple.
        batch_size: Samples per step (an int >= 1).
        loss: Default: :class:`~backprop.SoftmaxCrossEntropy` for a 2-D output,
            else :class:`~backprop.MeanSquaredError`. Its targets are random, of the
            kind it takes (class indices, probabilities, ±1, counts or real values:
            see ``_bench_targets``); one it cannot score the output with is a
            ValueError or TypeError naming the loss.
        optimizer: An :class:`~backprop.Optimizer` over ``model.parameters()`` (or
            some of them: the rest stay frozen, as in ``fit``), timed on a copy with
            the same settings and state. Default:
            ``SGD(lr=0.01, momentum=0.9)``.
        steps: Steps per repeat (>= 1); each repeat reports its median step.
        repeats: Repeats (>= 1); :attr:`BenchResult.step_time` is their median.
        warmup: Untimed steps first (>= 0; allocator, BLAS threads, caches).
        breakdown: Also run ``steps`` instrumented steps that time every
            top-level layer's forward and backward, the loss and the optimizer (each
            the median over those steps), and time each layer's own products (its
            share of the GEMM bound).
        seed: Seed of the random inputs and targets (an int >= 0).

    Returns:
        A :class:`BenchResult`: ``print`` it, or read ``samples_per_s``,
        ``gemm_fraction`` and ``layers``.

    Raises:
        TypeError: ``model`` is not a Layer, ``loss`` not a Loss, ``optimizer`` not
            an Optimizer, or a count or ``input_shape`` is not made of ints.
        ValueError: A count is out of range, ``input_shape`` has a size < 1 or does not
            fit the model, the model has no parameters to train, ``loss`` does not reduce
            (``reduction='none'``), ``optimizer`` holds parameters of another shape
            than ``model``'s, or a training step raises one (a BatchNorm at
            ``batch_size=1``: the message then names ``batch_size``).
        MemoryError: The batch or the model's arrays do not fit in memory.

    Example:
        >>> print(bp.bench(model, (784,), batch_size=128))        # doctest: +SKIP
    """
    input_shape = _check_args(model, input_shape, loss, optimizer, breakdown)
    batch_size = positive_int(batch_size, "batch_size", "bench")
    steps = positive_int(steps, "steps", "bench")
    repeats = positive_int(repeats, "repeats", "bench")
    warmup, seed = nonneg_int(warmup, "warmup", "bench"), nonneg_int(seed, "seed", "bench")
    work, opt, loss = _copies(model, optimizer, loss)
    x_shape = (batch_size, *input_shape)
    try:
        x, loss, target = _batch(work, loss, x_shape, seed)
    except MemoryError as err:  # NumPy's own message names no argument
        raise MemoryError(f"bench: a batch of shape {x_shape} does not fit in memory "
                          f"({err}); pass a smaller batch_size") from None
    except ValueError as err:  # the layer's message shows the batch, not the argument
        raise ValueError(f"bench: expected an input_shape that fits the model, got "
                         f"{input_shape}: {err}") from err
    _check_target(work, loss, x, target)

    def step() -> None:
        output = work.forward(x, training=True)
        loss.forward(output, target)
        work.backward(loss.backward(), input_grad=False)
        opt.step()

    per_layer = work.layer_gemm_shapes(x_shape, input_grad=False)
    shapes = [s for layer_shapes in per_layer for s in layer_shapes]
    # the bound first: timed after it, the steps of the first call in a process read as
    # fast as those of later calls (a CNN step's first call read ~25 % slower otherwise)
    bound = gemm_time(shapes, work.dtype, repeats=max(3, repeats))
    keep_freed_memory()  # as in fit: each step's arrays reused, not faulted in again
    try:  # and as in fit, the layers' passes skip their own errstate (see _quiet)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), inside():
            for _ in range(warmup):
                step()
            step_times = [_median_step(step, steps) for _ in range(repeats)]
            layers = _breakdown(work, loss, opt, x, target, steps) if breakdown else []
    except ValueError as err:  # BatchNorm's one sample per channel: the layer's message
        raise ValueError(f"bench: a training step at batch_size={batch_size} failed "
                         f"(input {x_shape}): {err}") from err  # names no argument
    finally:
        give_back()
    for i, layer_shapes in enumerate(per_layer if layers else []):
        layers[i].gemm = gemm_time(layer_shapes, work.dtype, repeats=3)
    notes = [n for n in (_openblas.blas_note(), _unlisted(work, bool(shapes))) if n]
    return BenchResult(
        model=f"{type(model).__name__} ({model.num_params:,} params)", batch_size=batch_size,
        input_shape=input_shape, dtype=str(work.dtype), step_times=step_times,
        gemm_time=bound, flops=float(gemm_flops(shapes)), layers=layers,
        notes=notes)


def _unlisted(model: Any, listed: bool) -> str | None:
    """A note naming the layers of one's own (not backprop's: BatchNorm has no products)
    with parameters and no ``gemm_shapes`` while other layers list products: the bound
    leaves any of theirs out."""

    names = [f"{path} ({type(layer).__name__})" for path, layer in model.named_layers()
             if layer.params and not layer.children()
             and type(layer).gemm_shapes is Layer.gemm_shapes
             and type(layer).__module__.split(".")[0] != "backprop"]
    if not (names and listed):  # (none listed at all: the result says so itself)
        return None
    which = f"layer {names[0]} lists" if len(names) == 1 else f"layers {', '.join(names)} list"
    return (f"{which} no matrix products (no gemm_shapes), so the GEMM bound leaves any of "
            f"theirs out: the bound, and the fraction with it, may read low")


def _check_args(model: Any, input_shape: Any, loss: Any, optimizer: Any,
                breakdown: Any) -> tuple[int, ...]:
    """Type-check bench's objects; return ``input_shape`` as a tuple of ints."""
    if not isinstance(model, Layer):
        raise TypeError(f"bench: expected model as a backprop Layer or Sequential, got "
                        f"{type(model).__name__}")
    if not model.parameters():
        raise ValueError(f"bench: expected a model with parameters to train, got {model!r}, "
                         "which has none (a training step would update nothing)")
    if loss is not None and not isinstance(loss, Loss):
        raise TypeError(f"bench: expected loss as a backprop Loss (e.g. "
                        f"bp.MeanSquaredError()) or None, got {loss!r}")
    if loss is not None:
        check_reduced(loss, "bench")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"bench: expected optimizer as a backprop Optimizer (e.g. "
                        f"bp.SGD(model.parameters(), lr=0.01)) or None, got {optimizer!r}")
    boolean(breakdown, "breakdown", "bench")
    shape = sample_shape(input_shape, "bench", indices=index_layer(model) is not None)
    if optimizer is not None:
        _trained(model, optimizer)
    return shape


def _trained(model: Layer, optimizer: Optimizer) -> list[int]:
    """The positions in ``model.parameters()`` of ``optimizer``'s parameters (all of them,
    or some: the others are frozen, as ``fit`` takes it), or a ValueError."""
    ours = model.parameters()
    found = trained_positions(model, optimizer)
    if None not in found:
        return found  # type: ignore[return-value]
    same_shapes = [p.value.shape for p in ours] == [p.value.shape for p in optimizer.params]
    # another model of the same architecture: its state maps by position (not with groups,
    # whose parameters come in group order, which need not be the model's)
    if same_shapes and not getattr(optimizer, "_children", None):
        return list(range(len(ours)))
    raise ValueError(f"bench: expected an optimizer over model.parameters() (shapes "
                     f"{[p.value.shape for p in ours]}) or some of them, got one over "
                     f"parameters of shapes {[p.value.shape for p in optimizer.params]}")


def _copies(model: Layer, optimizer: Optimizer | None,
            loss: Loss | None) -> tuple[Sequential, Optimizer, Loss | None]:
    """A copy of the model (re-flattened into its own buffers) and an optimizer on it."""
    work = model.astype(model.dtype)  # a deep copy; Sequential re-flattens its buffers
    if not isinstance(work, Sequential):
        work = Sequential([work])
    work.reset_state()  # a stateful layer's kept state is of the caller's batch size
    if optimizer is None:
        return work, SGD(work.parameters(), lr=0.01, momentum=0.9), copy.deepcopy(loss)
    params = work.parameters()
    trained = [params[i] for i in _trained(model, optimizer)]
    opt = type(optimizer)(regroup(optimizer, trained),  # in the same parameter groups
                          **optimizer.hyperparameters(), clip_norm=optimizer.clip_norm)
    state = optimizer.state_dict()
    # by position: a single layer's "W" is "0.W" once wrapped in a Sequential
    state["state"] = {new: state["state"][old] for old, new in
                      zip(optimizer._state_names(), opt._state_names(), strict=True)}
    opt.load_state_dict(state)
    return work, opt, copy.deepcopy(loss)


def _batch(work: Layer, loss: Loss | None, x_shape: tuple[int, ...],
           seed: int) -> tuple[np.ndarray, Loss, np.ndarray]:
    """Random inputs (indices for a first Embedding), the loss (its default chosen by the
    output's rank) and targets."""
    rng = np.random.default_rng(seed)
    table = index_layer(work)
    x = (rng.standard_normal(x_shape, dtype=work.dtype) if table is None  # (no float64
         else rng.integers(0, table.num_embeddings, x_shape))  # draw of a float32 batch)
    out = work.forward(x)
    loss = loss if loss is not None else (
        SoftmaxCrossEntropy() if out.ndim == 2 else MeanSquaredError())
    return x, loss, target_for(loss, out, rng)


def _check_target(work: Layer, loss: Loss, x: np.ndarray, target: np.ndarray) -> None:
    """One forward of the loss on the made-up target: an output it cannot score (or a loss
    of your own that takes other targets) is named here, not as a fault of a ``y``."""
    out = work.forward(x)
    try:
        loss.forward(out, target)
    except (ValueError, TypeError) as err:
        raise type(err)(f"bench: {type(loss).__name__} cannot score this model's output "
                        f"{out.shape} with the random targets bench makes for it (of shape "
                        f"{target.shape}, dtype {target.dtype}; see bench's loss argument): "
                        f"{err}") from err


def _median_step(step: Any, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = perf_counter()
        step()
        times.append(perf_counter() - start)
    return statistics.median(times)


def _breakdown(work: Sequential, loss: Loss, opt: Optimizer, x: np.ndarray,
               target: np.ndarray, steps: int) -> list[LayerTime]:
    """Per-layer times of ``steps`` real steps, each layer's methods wrapped in a timer:
    each row the median over the steps (a stall of one step, on a shared CPU, would
    swell a mean many times over)."""
    acc: dict[str, list[float]] = {}
    for i, layer in enumerate(work.layers):
        name = f"({i}) {type(layer).__name__ if layer.children() else repr(layer)}"  # one line
        acc[name] = [0.0, 0.0, 0.0]  # forward, backward, "inside a timed call"
        layer.forward = _timed(layer.forward, acc[name], 0)  # type: ignore[method-assign]
        layer.backward = _timed(layer.backward, acc[name], 1)  # type: ignore[method-assign]
        layer.backward_params = _timed(layer.backward_params, acc[name], 1)  # type: ignore
    acc["loss"], acc["optimizer step"] = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    loss_fwd = _timed(loss.forward, acc["loss"], 0)
    loss_bwd = _timed(loss.backward, acc["loss"], 1)
    opt_step = _timed(opt.step, acc["optimizer step"], 0)
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in acc}
    others = []
    for _ in range(steps):
        for slot in acc.values():
            slot[0] = slot[1] = 0.0
        start = perf_counter()
        output = work.forward(x, training=True)
        loss_fwd(output, target)
        work.backward(loss_bwd(), input_grad=False)
        opt_step()
        step = perf_counter() - start
        for name, (f, b, _) in acc.items():
            seen[name].append((f, b))
        others.append(step - sum(f + b for f, b, _ in acc.values()))
    med = statistics.median
    times = [LayerTime(name, med(f for f, _ in v), med(b for _, b in v))
             for name, v in seen.items()]
    return times + [LayerTime("other (Python, glue)", max(med(others), 0.0), 0.0)]


def _timed(fn: Any, slot: list[float], index: int) -> Any:
    """``fn`` adding its run time to ``slot[index]``; nested calls (a default
    ``backward_params`` calling ``backward``) are counted once."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if slot[2]:
            return fn(*args, **kwargs)
        slot[2] = 1.0
        start = perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            slot[index] += perf_counter() - start
            slot[2] = 0.0

    return wrapper
