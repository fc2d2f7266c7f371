"""Save and load models as one ``.npz`` file: plain arrays and JSON, never pickle.

Layout of the file (every entry a plain numeric array; nothing is unpickled on load)::

    header              uint8, the UTF-8 JSON below
    param/<name>        every trainable array, by its stable name ("0.W", "2.block.1.b")
    buffer/<name>       saved non-trained state (BatchNorm running statistics)
    optimizer/...       arrays of ``optimizer.state_dict()`` ("optimizer/state/0.W/exp_avg")
    training/...        arrays inside ``training_state``, if any
    config/..., rng/... arrays inside a layer's config or Generator state (rare: MT19937)

    header = {"format": "backprop", "format_version": 1, "backprop_version": "0.1.0",
              "model": {"class": "Sequential", "config": {"dtype": "float32"},
                        "children": [{"name": "0", "class": "Dense",
                                      "config": {"in_features": 64, ...}}, ...]},
              "optimizer": {...} | null, "training_state": {...} | null}

Inside the JSON an array is ``{"__ndarray__": "<entry name>"}`` and a tuple is
``{"__tuple__": [...]}``, so optimizer states and training states round-trip exactly.

Layers are rebuilt generically: class name -> class (every layer exported by
:mod:`backprop.layers`, plus classes given to :func:`register_layer`), constructor
keyword arguments from :meth:`Layer.get_config`, and a container's children from
:meth:`Layer.children` (passed by name when the constructor takes them by name, as
``Residual(block)``, spread where only ``*args`` is left, as ``Chain(*blocks)``, else as
one list, as ``Sequential(layers)``; a container whose constructor has no argument left
to take them, ``Block(width)``, builds its own, checked against the saved names and
classes; see ``_layer_tree._arrangement``). The state of every numpy Generator a layer
holds in an attribute is saved too (``rng``, as Dropout's, in the node's ``"rng"``; any
other name, as a layer of one's own's ``self._rng``, in ``"rngs"`` by name), so dropout
masks continue exactly after a resume.

Writes are atomic: the file is written beside the target (as ``.bp-<pid>-<hex>.tmp``),
flushed to disk and renamed over it, so a crash leaves either the old complete file or
the new one; a later save into the same folder removes what a killed one left. Before
writing, ``save`` rebuilds the model from its description once (as ``load`` will), so a
model that ``load`` could not rebuild is refused at once, not found out at load time.
"""

from __future__ import annotations

import errno
import json
import os
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _layer_tree
from ._atomic import atomic_savez, os_cause, os_named
from ._layer_tree import build, check_settings, decode, describe, encode, register_layer
from ._npz import open_npz
from ._saved_optimizer import check_optimizer
from ._validate import as_path
from .backend import all_finite
from .initializers import rebuilding
from .layers._alloc import OverBudget, weights_budget
from .layers._state import owner_of
from .layers.base import Layer
from .optimizers.base import Optimizer
from .optimizers.clip import _NONNEGATIVE

__all__ = ["save", "load", "load_checkpoint", "register_layer", "Checkpoint", "FORMAT_VERSION"]

FORMAT_VERSION = 1


# -- save ------------------------------------------------------------------------------------
def save(model: Layer, path: str | os.PathLike, *, optimizer: Any = None,
         training_state: dict[str, Any] | None = None) -> None:
    """Write the model (and optionally its optimizer and training state) to one ``.npz``.

    The write is atomic: a temporary file in the same folder is flushed to disk and
    renamed onto ``path``, so ``path`` always holds a complete file. The file is
    written exactly at ``path`` (no ``.npz`` is appended); a file it replaces keeps
    its permissions, and a symlink at ``path`` keeps pointing at the new file. A
    device or FIFO at ``path`` (``/dev/null``) is written into, never replaced.

    Args:
        model: The model (any layer; usually a :class:`Sequential`).
        path: Target file.
        optimizer: An optimizer (its ``state_dict()`` is saved) or a state dict.
        training_state: JSON-able dict (arrays allowed) the training loop wants back.

    Raises:
        TypeError: ``model`` is not a Layer, one of its classes is not registered,
            ``optimizer`` neither an optimizer nor a dict, ``training_state`` not a dict,
            or the states hold something that is neither JSON-able nor an array;
            ``path`` is not a str or os.PathLike.
        ValueError: ``path`` is empty or holds a NUL character, or a parameter, buffer
            or the optimizer's state holds NaN or inf (a file that :func:`load` would
            refuse; an average of squares or a running maximum may be +inf, as in
            PyTorch: an overflowed square, whose entry then stops moving), or
            :func:`load` could not rebuild the model from its layers' configs, or would
            rebuild a layer of one's own otherwise (an argument kept under another name;
            checked once per model and architecture), or
            ``optimizer`` holds parameters that are not the model's (one built over
            another model, those that match no parameter of the model by shape named;
            any part of the model's is fine).
        OSError: ``path`` is a folder or ends in a separator (IsADirectoryError), its
            folder does not exist (FileNotFoundError) or is a file (NotADirectoryError),
            or the folder or an existing file is not writable (PermissionError); the
            message names ``save`` and ``path``. An existing file at ``path`` is left as
            it was.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"save: expected a backprop Layer or Sequential, got "
                        f"{type(model).__name__}")
    target = _target(path)
    arrays: dict[str, np.ndarray] = {}
    if isinstance(optimizer, Layer):  # its state_dict() is weights, no optimizer's state
        raise TypeError(f"save: expected optimizer as an optimizer or its state_dict(), got "
                        f"a model, {type(optimizer).__name__}: save(model, path, optimizer=opt)")
    live = getattr(type(optimizer), "state_dict", None) is Optimizer.state_dict  # not an override
    state = (optimizer.state_dict(copy=False) if live  # no copies: written now (a 38M-
             else optimizer.state_dict() if hasattr(optimizer, "state_dict")  # parameter
             else optimizer)  # Adam's copies were 20 % of its save)
    for name, value in (("optimizer", state), ("training_state", training_state)):
        if value is not None and not isinstance(value, dict):  # (load would hand it back)
            raise TypeError(f"save: expected {name} as " + (
                "an optimizer or its state_dict()" if name == "optimizer" else "a dict")
                + f", got {type(value).__name__} {value!r:.60}")
    who = f"save({str(target)!r})"
    if state is not None:
        check_optimizer(model, optimizer, state, who)
    header = {
        "format": "backprop", "format_version": FORMAT_VERSION,
        "backprop_version": _version(),
        "model": describe(model, "", arrays),
        "optimizer": encode(state, "optimizer", arrays),
        "training_state": encode(training_state, "training", arrays),
    }
    check_rebuilds(model, header["model"], arrays, who)
    for k, v in arrays.items():  # load refuses such a state: it must not be written either
        if k.startswith("optimizer/"):  # (+inf in an average of squares it keeps, as torch)
            _check_finite(v, "optimizer state", k.split("/", 2)[-1], who,
                          "a moment overflowed? a gradient beyond the float range",
                          plus_inf=k.rsplit("/", 1)[-1] in _NONNEGATIVE)
    for kind, store in (("param", model.params), ("buffer", model.buffers)):
        for k, v in store.items():
            _check_finite(v, kind, k, who, "a diverged model? to look at it, "
                          "np.savez(path, **model.state_dict())")
            arrays[f"{kind}/{k}"] = v
    text = json.dumps(header, allow_nan=True)  # NaN/inf allowed: Python reads them back
    arrays["header"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    atomic_savez(target, arrays)


def _target(path: Any) -> Path:
    """The file ``save`` writes: errors name the path as given, not a temporary file."""
    target = as_path(path, "save", file=True)
    try:
        is_dir, folder = target.is_dir(), target.parent
        folder_is_file = folder.exists() and not folder.is_dir()
    except OSError as err:  # a folder on the way not searchable (PermissionError)
        raise os_named(err, f"save: cannot write {str(target)!r} ({os_cause(err)})") from err
    if is_dir:
        raise IsADirectoryError(errno.EISDIR, f"save: expected a file path, got the folder "
                                f"{str(target)!r}")
    if folder_is_file:
        raise NotADirectoryError(errno.ENOTDIR, f"save: expected {str(target)!r} in a folder, "
                                 f"got {str(folder)!r}, which is a file")
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"save: expected {str(target)!r} in an existing "
                                f"folder, got no folder {str(folder)!r}")
    return target


_REBUILT: dict[int, tuple[Any, str]] = {}  # id(model) -> (weakref, the layout checked)


def check_rebuilds(model: Layer, node: dict[str, Any], arrays: dict[str, np.ndarray],
                   who: str) -> None:
    """Rebuild ``model`` from its :func:`describe` node as :func:`load` will, and raise a
    ValueError naming the fix when that fails or gives other parameters or buffers:
    else ``save`` would write a file no ``load`` can read. Done once per model and
    layout (a fit's checkpoints after the first skip it)."""
    layout = json.dumps(_without_rng(node), sort_keys=True, default=str) + str(sorted(
        (k, a.shape, a.dtype.str) for k, a in arrays.items() if k.startswith("state/")))
    seen = _REBUILT.get(id(model))
    if seen is not None and seen[0]() is model and seen[1] == layout:
        return
    rule = ("load rebuilds each layer as cls(**layer.get_config()), so a layer must keep "
            "every constructor argument under its own name, and a container gets its "
            "children() as arguments (by name when its constructor takes them by name, as "
            "Residual(block), as Chain(*blocks), else as one list, as Sequential(layers)) "
            "unless its constructor has no argument left for them and builds them itself "
            "(Block(width))")
    try:
        with warnings.catch_warnings(), rebuilding():  # (warnings: said at first build)
            warnings.simplefilter("ignore")
            rebuilt = build(node, "", arrays, who)
    except ValueError as err:
        unkept = [f"{type(layer).__name__} ({name}) keeps no attribute named "
                  f"{', '.join(map(repr, args))}"
                  for name, layer in [("the model", model), *model.named_layers()]
                  if not type(layer).__module__.startswith("backprop.")
                  and (args := _layer_tree.unkept_arguments(layer))]
        hint = f" ({'; '.join(unkept)})" if unkept else ""
        raise ValueError(f"{err}. Nothing was written{hint}: {rule}") from err
    check_settings(model, rebuilt, who, rule)
    for kind in ("params", "buffers"):
        ours = {k: (v.shape, v.dtype.str) for k, v in getattr(model, kind).items()}
        theirs = {k: (v.shape, v.dtype.str) for k, v in getattr(rebuilt, kind).items()}
        if ours != theirs:
            raise ValueError(f"{who}: load would rebuild this model with other {kind} "
                             f"({theirs}) than it has ({ours}). Nothing was written: {rule}")
    for key in [k for k, (ref, _) in _REBUILT.items() if ref() is None]:  # models gone
        del _REBUILT[key]
    _REBUILT[id(model)] = (weakref.ref(model), layout)


def _without_rng(node: Any) -> Any:
    """A describe() node without Generator states (they change every epoch)."""
    if not isinstance(node, dict):
        return node
    return {k: ([_without_rng(c) for c in v] if k == "children" else v)
            for k, v in node.items() if k not in ("rng", "rngs")}


def _version() -> str:
    from . import __version__

    return __version__


# -- load ------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """Everything :func:`save` wrote: the rebuilt model and the saved states.

    Attributes:
        model: The model with its saved weights and buffers.
        optimizer_state: ``optimizer.state_dict()`` as saved (give it to a new
            optimizer's ``load_state_dict``), or None.
        training_state: The dict given to :func:`save`, or None.
        format_version: File format version.
    """

    model: Any
    optimizer_state: dict[str, Any] | None
    training_state: dict[str, Any] | None
    format_version: int


def load(path: str | os.PathLike) -> Any:
    """Load a model saved with :func:`save` or ``model.save`` (weights and buffers).

    Args:
        path: The file ``save`` wrote (any name: no suffix is added or expected).

    Returns:
        The model (a :class:`Sequential` when one was saved), giving the same
        predictions as the saved one.

    Raises:
        TypeError: ``path`` is not a str or os.PathLike.
        FileNotFoundError: ``path`` does not exist (IsADirectoryError: it is a folder or
            ends in a separator). ValueError: it is empty or holds a NUL character, or
            names a device, FIFO or socket.
        PermissionError: The file cannot be read (the message names the call).
        ValueError: The file is truncated, corrupt, of another format version, names
            an unregistered layer class, or its weights do not fit its configuration
            (sizes it asks for past the weights the file stores are refused before
            they are allocated) or hold NaN or inf, or a running variance below 0; or
            an array it needs expands to over 64 MiB at more than 100 times its
            compressed size (``save`` stores arrays uncompressed), or its configuration
            does not fit in memory. Members its header does not name are never read.
    """
    return _read(path, "load").model


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a model plus the optimizer and training states saved with it.

    Args:
        path: A file written by :func:`save` or :class:`~backprop.ModelCheckpoint`.

    Returns:
        A :class:`Checkpoint`: ``model``, ``optimizer_state`` (a state dict for
        ``optimizer.load_state_dict``, or None) and ``training_state`` (the dict given
        to :func:`save`, or None).

    Raises:
        TypeError, FileNotFoundError, IsADirectoryError, PermissionError: As :func:`load`.
        ValueError: As :func:`load`; the message names ``load_checkpoint`` and the file.
    """
    return _read(path, "load_checkpoint")


def _read(path: Any, name: str) -> Checkpoint:
    """:func:`load_checkpoint`, its errors naming ``name`` (the function called) and path."""
    who = f"{name}({os.fspath(as_path(path, name, file=True))!r})"
    # members are read when the header names them: an archive's other members never are
    with open_npz(Path(os.fspath(path)), who, guard=True) as arrays:
        try:  # a hand-made header nested thousands deep exhausts Python's stack
            header = _read_header(arrays, who)
            with rebuilding(), weights_budget(arrays.stored_bytes("param/")):
                model = build(header.get("model"), "", arrays, who)
            _fill_weights(model, arrays, who)
            return Checkpoint(model, decode(header.get("optimizer"), arrays, who),
                              decode(header.get("training_state"), arrays, who),
                              FORMAT_VERSION)
        except RecursionError as err:
            raise ValueError(f"{who}: expected a backprop header, got one nested too deeply "
                             "to read") from err
        except MemoryError as err:  # a header's sizes far beyond its stored arrays
            what = ("whose weights the file stores" if isinstance(err, OverBudget) else
                    "that fits in memory")
            raise ValueError(f"{who}: expected a layer configuration {what}, got one that "
                             f"does not ({err}): a damaged or hand-edited header?") from err


def _read_header(arrays: dict[str, np.ndarray], who: str) -> dict[str, Any]:
    raw = arrays.get("header")
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        torch_file = any(k.endswith("data.pkl") for k in arrays)  # torch.save's zip
        got = (f"arrays {sorted(arrays)[:8]}" if raw is None else f"a 'header' of dtype "
               f"{raw.dtype} and shape {raw.shape}, not the 1-D uint8 JSON text save writes")
        raise ValueError(f"{who}: expected a backprop model file with a 'header' array, got "
                         f"{got}"
                         + ("; this is a PyTorch file (torch.save): torch.load it and convert "
                            "its state dict with bp.from_torch(model, state_dict)"
                            if torch_file else ""))
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{who}: expected a JSON header, got unreadable text ({err})") from err
    if not isinstance(header, dict) or header.get("format") != "backprop":
        raise ValueError(f"{who}: expected a header with format 'backprop', got {header!r:.80}")
    version = header.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:  # not true, not 1.0
        known = type(version) is int and 1 <= version
        hint = ("upgrade backprop to read it" if known and version > FORMAT_VERSION
                else "written by an older backprop: load it there and np.savez its "
                "state_dict() for load_state_dict here" if known
                else "versions start at 1: this file was not written by backprop's save, "
                "or its header was edited")
        raise ValueError(f"{who}: expected file format version {FORMAT_VERSION}, got "
                         f"{version!r}; {hint}")
    return header


def _fill_weights(model: Layer, arrays: dict[str, np.ndarray], who: str) -> None:
    """Copy stored params and buffers into the new model's own arrays, checked exactly."""
    for kind, target in (("param", model.params), ("buffer", model.buffers)):
        stored = {k.split("/", 1)[1]: k for k in arrays if k.startswith(kind + "/")}
        missing, extra = sorted(set(target) - set(stored)), sorted(set(stored) - set(target))
        if missing or extra:
            raise ValueError(f"{who}: the layer configuration does not match the stored "
                             f"{kind}s: missing {missing}, unexpected {extra}")
        owners = {"": model, **dict(model.named_layers())}
        for k, dst in target.items():
            src = arrays[stored[k]]  # read now, its name checked
            if src.shape != dst.shape or src.dtype != dst.dtype:
                raise ValueError(f"{who}: expected {kind} {k!r} of shape {dst.shape} and dtype "
                                 f"{dst.dtype} (from the layer configuration), got "
                                 f"{src.shape} {src.dtype}")
            _check_finite(src, kind, k, who, "a damaged file, or one written by other code")
            if kind == "buffer":  # what load_state_dict refuses too (a negative variance)
                owner, name = owner_of(owners, k)
                owner._check_buffer(name, src, k, who)
            dst[...] = src


def _check_finite(a: np.ndarray, kind: str, name: str, who: str, hint: str,
                  plus_inf: bool = False) -> None:
    """Weights with NaN or inf are never written or read: a diverged model must not
    replace the last good file, and a damaged file must not load silently. With
    ``plus_inf``, +inf passes (an optimizer's average of squares, as ``_check_values``)."""
    if a.dtype.kind == "f" and not all_finite(a):
        ok = np.isfinite(a) | (a == np.inf) if plus_inf else np.isfinite(a)
        bad = int(a.size - np.count_nonzero(ok))
        if not bad:
            return
        what = "weights" if kind in ("param", "buffer") else "values"
        raise ValueError(f"{who}: expected finite {what}, got {bad} NaN/inf value"
                         f"{'s' * (bad != 1)} in {kind} {name!r} ({hint})")
