"""Weight initializers.

Each takes ``(shape, rng, dtype)`` and returns a new array (``rng``: a numpy Generator,
an int seed, or None, as a layer's ``rng=``). Fans follow the
layouts of this package: a 2-D shape is Dense's ``(fan_in, fan_out)``; a
convolution kernel ``(C_out, C_in, *k)`` has ``fan_in = C_in * prod(k)`` and
``fan_out = C_out * prod(k)`` (as in PyTorch and Keras).

=================  ==================================================
glorot_uniform     U(-a, a),  a = sqrt(6 / (fan_in + fan_out))
glorot_normal      N(0, 2 / (fan_in + fan_out))
he_uniform         U(-a, a),  a = sqrt(6 / fan_in)
he_normal          N(0, 2 / fan_in)
lecun_normal       N(0, 1 / fan_in)
lecun_uniform      U(-a, a),  a = sqrt(3 / fan_in)
torch_uniform      U(-a, a),  a = 1 / sqrt(fan_in)   (PyTorch's Linear/Conv default)
standard_normal    N(0, 1)                         (PyTorch's Embedding default)
uniform            U(-0.05, 0.05)                  (Keras' Embedding default)
zeros / ones       constants
=================  ==================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from math import prod, sqrt
from typing import Any

import numpy as np

from ._validate import fits

Initializer = Callable[[tuple[int, ...], np.random.Generator, Any], np.ndarray]

__all__ = ["Initializer", "fans", "get", "glorot_normal", "glorot_uniform", "he_normal",
           "he_uniform", "lecun_normal", "lecun_uniform", "make_rng", "manual_seed", "ones",
           "standard_normal", "torch_uniform", "uniform", "zeros"]


def _shape(shape: Any) -> tuple[int, ...]:
    """``shape`` (an int, or a tuple or list of ints >= 0) as a tuple, or a named error."""
    items = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if (not isinstance(items, (tuple, list)) or not items
            or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) for n in items)):
        raise TypeError(f"initializers: expected shape as an int or a non-empty tuple of "
                        f"ints, got {shape!r}")
    if any(n < 0 for n in items):
        raise ValueError(f"initializers: expected shape of sizes >= 0, got {shape!r}")
    return tuple(int(n) for n in items)


def _checked(shape: Any, dtype: Any) -> tuple[tuple[int, ...], np.dtype]:
    """``shape`` as by :func:`_shape` and ``dtype`` as a floating dtype (None: float32, a
    layer's default, not NumPy's float64), refusing by name what NumPy's own errors
    ("Cannot interpret '0' as a data type", "Maximum allowed dimension exceeded") did not."""
    shape = _shape(shape)
    try:
        dt = np.dtype(np.float32 if dtype is None else dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise TypeError(f"initializers: expected dtype as a floating dtype (float32 or "
                        f"float64), got {dtype!r:.80}")
    fits("initializers", shape, dt, None, "a weight")
    return shape, dt


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` for a weight of ``shape`` (see the module doc); 1 for
    an empty weight (nothing is drawn: PyTorch's init leaves those alone too)."""
    shape = _shape(shape)
    if 0 in shape:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


_CHUNK = 1 << 20  # float64 draws at a time: 8 MB, whatever the weight's size
# inside rebuilding(): weights of zeros, nothing drawn, nothing taken from manual_seed's
_REBUILDING: ContextVar[bool] = ContextVar("backprop_rebuilding", default=False)


def _drawn(shape, dtype, draw: Callable[[int], np.ndarray]) -> np.ndarray:
    """``draw(n)`` (float64) for every element, chunk by chunk into the output dtype.

    The Generator's stream is sequential, so the chunks' values are those of one draw of
    the whole size, bit for bit; a float32 Dense(4096, 4096) then peaks at its 64 MiB
    plus 8 MB, not at the 192 MiB of a whole float64 draw and its cast."""
    if _REBUILDING.get():  # a rebuild whose weights come from a file (see rebuilding)
        return np.zeros(shape, dtype)
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, _CHUNK):
        flat[start:start + _CHUNK] = draw(min(_CHUNK, flat.size - start))
    return out


def _generator(rng: Any) -> np.random.Generator:
    """A Generator, an int seed or None, as everywhere in backprop (see :func:`make_rng`)."""
    return make_rng(rng, "initializers")


def _uniform(shape, rng, dtype, a: float) -> np.ndarray:
    rng = _generator(rng)
    return _drawn(*_checked(shape, dtype), lambda n: rng.uniform(-a, a, size=n))


def _normal(shape, rng, dtype, std: float) -> np.ndarray:
    rng = _generator(rng)
    return _drawn(*_checked(shape, dtype), lambda n: rng.standard_normal(size=n) * std)


def zeros(shape, rng=None, dtype=np.float32) -> np.ndarray:
    """All zeros (biases, BatchNorm beta)."""
    return np.zeros(*_checked(shape, dtype))


def ones(shape, rng=None, dtype=np.float32) -> np.ndarray:
    """All ones (BatchNorm gamma)."""
    return np.ones(*_checked(shape, dtype))


def glorot_uniform(shape, rng, dtype=np.float32) -> np.ndarray:
    """Glorot/Xavier uniform: keeps activation variance for tanh/sigmoid layers."""
    fan_in, fan_out = fans(shape)
    return _uniform(shape, rng, dtype, sqrt(6.0 / (fan_in + fan_out)))


def glorot_normal(shape, rng, dtype=np.float32) -> np.ndarray:
    """Glorot/Xavier normal."""
    fan_in, fan_out = fans(shape)
    return _normal(shape, rng, dtype, sqrt(2.0 / (fan_in + fan_out)))


def he_uniform(shape, rng, dtype=np.float32) -> np.ndarray:
    """He/Kaiming uniform: the factor 2 compensates ReLU zeroing half its inputs."""
    fan_in, _ = fans(shape)
    return _uniform(shape, rng, dtype, sqrt(6.0 / fan_in))


def he_normal(shape, rng, dtype=np.float32) -> np.ndarray:
    """He/Kaiming normal."""
    fan_in, _ = fans(shape)
    return _normal(shape, rng, dtype, sqrt(2.0 / fan_in))


def lecun_normal(shape, rng, dtype=np.float32) -> np.ndarray:
    """LeCun normal (SELU networks, and a safe default for linear outputs)."""
    fan_in, _ = fans(shape)
    return _normal(shape, rng, dtype, sqrt(1.0 / fan_in))


def lecun_uniform(shape, rng, dtype=np.float32) -> np.ndarray:
    """LeCun uniform, U(±sqrt(3 / fan_in)): the variance of lecun_normal, uniformly drawn."""
    fan_in, _ = fans(shape)
    return _uniform(shape, rng, dtype, sqrt(3.0 / fan_in))


def torch_uniform(shape, rng, dtype=np.float32, *, fan_in: int | None = None) -> np.ndarray:
    """PyTorch's default for Linear and Conv weights and biases: U(±1/sqrt(fan_in)).

    ``fan_in`` defaults to the shape's. As the ``bias_init`` of ``Dense`` or
    ``Conv1D/2D`` the layer passes its weight's, so the bias is bounded as PyTorch's;
    called on a 1-D shape by hand without it, fan_in is the length.
    """
    fan_in = fans(shape)[0] if fan_in is None else fan_in
    if isinstance(fan_in, bool) or not (isinstance(fan_in, (int, float, np.integer, np.floating))
                                        and 0 < fan_in < float("inf")):
        raise ValueError(f"torch_uniform: expected fan_in as a positive number, got {fan_in!r}")
    return _uniform(shape, rng, dtype, sqrt(1.0 / fan_in))


def standard_normal(shape, rng, dtype=np.float32) -> np.ndarray:
    """N(0, 1) draws: PyTorch's ``Embedding`` weights (not Keras' ``'normal'``, whose
    standard deviation is 0.05)."""
    return _normal(shape, rng, dtype, 1.0)


def uniform(shape, rng, dtype=np.float32) -> np.ndarray:
    """U(-0.05, 0.05): Keras' ``RandomUniform`` default, its ``Embedding``'s weights."""
    return _uniform(shape, rng, dtype, 0.05)


_BY_NAME: dict[str, Initializer] = {
    f.__name__: f
    for f in (zeros, ones, glorot_uniform, glorot_normal, he_uniform, he_normal,
              lecun_normal, lecun_uniform, torch_uniform, standard_normal, uniform)
}
_BY_NAME.update(xavier_uniform=glorot_uniform, xavier_normal=glorot_normal,
                kaiming_uniform=he_uniform, kaiming_normal=he_normal)


def get(init: str | Initializer, who: str = "initializer", what: str = "an initializer"
        ) -> Initializer:
    """Resolve an initializer given by name or as a callable ``(shape, rng, dtype)``;
    errors read ``"{who}: expected {what} ..."``."""
    if callable(init):
        try:
            inspect.signature(init).bind(None, None, None)
        except ValueError:  # no signature to read (a builtin): called as it is
            pass
        except TypeError:
            raise TypeError(f"{who}: expected {what} as a callable init(shape, rng, dtype), got "
                            f"{getattr(init, '__name__', init)!r} with signature "
                            f"{inspect.signature(init)}") from None
        return init
    if isinstance(init, str) and init in _BY_NAME:
        return _BY_NAME[init]
    raise ValueError(f"{who}: expected {what} as a name in {sorted(_BY_NAME)} "
                     f"or a callable (shape, rng, dtype), got {init!r}")


# Where rng=None / seed=None draw from: OS entropy, or manual_seed's sequence.
_SOURCE: np.random.SeedSequence | None = None


def manual_seed(seed: int | None) -> None:
    """Seed every ``rng=None`` and ``seed=None`` in backprop (``torch.manual_seed``,
    Keras' ``set_random_seed``); ``None`` goes back to OS entropy.

    After ``bp.manual_seed(0)``, each layer built without ``rng=``, each Dropout and
    each ``fit(seed=None)`` takes the next child of one ``np.random.SeedSequence(0)``:
    the same program gives the same numbers, run after run. NumPy's global
    ``np.random`` state is neither read nor changed. An explicit ``rng=``/``seed=``
    is used as given and does not advance the sequence.

    Args:
        seed: An int >= 0, or None for OS entropy.

    >>> import backprop as bp
    >>> bp.manual_seed(0); a = bp.Dense(3, 2).params["W"]
    >>> bp.manual_seed(0); b = bp.Dense(3, 2).params["W"]
    >>> bool((a == b).all())
    True
    """
    global _SOURCE
    if seed is None:
        _SOURCE = None
        return
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: expected an int seed >= 0 or None, got {seed!r}")
    if seed < 0:
        raise ValueError(f"manual_seed: expected an int seed >= 0 or None, got {seed}")
    _SOURCE = np.random.SeedSequence(int(seed))


@contextmanager
def rebuilding() -> Iterator[None]:
    """Layers built inside draw no initial weights (zeros: a 38M-parameter model's draws
    were 40 % of its ``load``) and take nothing from :func:`manual_seed`'s sequence:
    ``save``'s and ``load``'s rebuilds, whose weights and Generators come from the file,
    leave the numbers of what the program builds after them as they would be without."""
    token = _REBUILDING.set(True)  # this thread's (and task's) alone: a layer another
    try:  # thread builds meanwhile draws its weights as usual
        yield
    finally:
        _REBUILDING.reset(token)


def make_rng(rng: np.random.Generator | int | None, who: str = "make_rng",
             name: str = "rng") -> np.random.Generator:
    """Return a Generator from a Generator, a seed (an int >= 0), or None (OS entropy,
    or the next child of :func:`manual_seed`'s sequence); errors name ``who`` and the
    argument ``name``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        if _SOURCE is None or _REBUILDING.get():  # (a rebuild's Generators come from its file)
            return np.random.default_rng(None if _SOURCE is None else 0)
        return np.random.default_rng(_SOURCE.spawn(1)[0])
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            what = "seed >= 0" if name == "seed" else f"{name} as a seed >= 0"
            raise ValueError(f"{who}: expected {what}, a numpy Generator or None, got {rng}")
        return np.random.default_rng(rng)
    raise TypeError(f"{who}: expected {name} to be a numpy Generator, an int seed >= 0 or "
                    f"None, got {rng!r}")
