"""Weights from PyTorch: :func:`from_torch` maps a ``torch.nn`` state dict onto a model.

PyTorch is never imported here: a state dict's tensors are read with ``np.asarray``
(on the CPU), so a dict of NumPy arrays with PyTorch's names and layouts works too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._tensors import tensor_values
from ._torch_transformer import encoder_layers_in_order
from .layers.base import Layer

# backprop's name for each PyTorch parameter or buffer, by kind of layer
_NAMES = {
    "Dense": {"weight": "W", "bias": "b"},
    "Conv": {"weight": "W", "bias": "b"},
    "BatchNorm": {"weight": "gamma", "bias": "beta", "running_mean": "running_mean",
                  "running_var": "running_var", "num_batches_tracked": "num_batches_tracked"},
    "LayerNorm": {"weight": "gamma", "bias": "beta"},
    "GroupNorm": {"weight": "gamma", "bias": "beta"},
    "RMSNorm": {"weight": "gamma"},
    "InstanceNorm": {"weight": "gamma", "bias": "beta", "running_mean": "running_mean",
                     "running_var": "running_var", "num_batches_tracked": "num_batches_tracked"},
    "PReLU": {"weight": "alpha"},
    "Embedding": {"weight": "W"},
    "PositionalEmbedding": {"weight": "W"},  # PyTorch's nn.Embedding(max_length, E) of positions
    "Recurrent": {"weight_ih_l0": "W", "weight_hh_l0": "U", "bias_ih_l0": "b",
                  "bias_hh_l0": "b_h"},
    "MultiheadAttention": {"in_proj_weight": "W_in", "in_proj_bias": "b_in",
                           "out_proj.weight": "W_out", "out_proj.bias": "b_out"},
}
# the constructor argument that decides whether a layer has that PyTorch entry
_FLAGS = {"bias": "bias", "weight": "affine", "running_mean": "track_running_stats",
          "running_var": "track_running_stats", "bias_ih_l0": "bias", "bias_hh_l0": "bias",
          "in_proj_bias": "bias", "out_proj.bias": "bias"}
# PyTorch's (out, in) weights, transposed to backprop's (in, out)
_TRANSPOSED = {"Dense": ("weight",), "Recurrent": ("weight_ih_l0", "weight_hh_l0"),
               "MultiheadAttention": ("in_proj_weight", "out_proj.weight")}
_LAYER_NORM_FLAGS = {"weight": "elementwise_affine", "bias": "bias"}
# the last part of every PyTorch name above (a recurrent layer's _l0 for any _lK[_reverse])
_LAST_PARTS = {k.rsplit(".", 1)[-1] for names in _NAMES.values() for k in names}


def is_torch_name(key: Any) -> bool:
    """Whether ``key`` ends as a PyTorch parameter or buffer name that ``from_torch`` reads
    (``0.weight``, ``lstm.bias_hh_l1_reverse``, ``attn.in_proj_bias``...)."""
    last = key.rsplit(".", 1)[-1] if isinstance(key, str) else ""
    return re.sub(r"_l\d+(_reverse)?$", "_l0", last) in _LAST_PARTS


def from_torch(model: Any, state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``model``'s state dict filled from a PyTorch module's, for ``model.load_state_dict``.

    The PyTorch module must hold the same layers with weights in the same order
    (``nn.Linear`` for :class:`Dense`, ``nn.Conv1d``/``nn.Conv2d``/``nn.Conv3d`` and
    ``nn.ConvTranspose1d``/``2d``/``3d`` for the convolutions,
    ``nn.BatchNorm1d/2d/3d``, ``nn.LayerNorm``, ``nn.GroupNorm``, ``nn.InstanceNorm1d/2d/3d``,
    ``nn.RMSNorm``, ``nn.PReLU``, ``nn.Embedding``, whose weight has the same layout,
    ``nn.LSTM``/``nn.GRU``/``nn.RNN`` for :class:`LSTM`, :class:`GRU`,
    :class:`RNN`, whose ``weight_ih_l0``/``weight_hh_l0`` become ``W``/``U`` transposed and
    ``bias_ih_l0``/``bias_hh_l0`` ``b``/``b_h``, ``num_layers=k`` into k stacked layers,
    ``bidirectional=True`` into :class:`Bidirectional` (the ``_reverse`` arrays into its
    ``backward_layer``; ``num_layers=k``: k of them stacked, each after the first of input
    size ``2H``);
    ``nn.MultiheadAttention`` for :class:`MultiheadAttention`, whose ``in_proj_weight`` and
    ``out_proj.weight`` become ``W_in``/``W_out`` transposed, ``in_proj_bias`` and
    ``out_proj.bias`` ``b_in``/``b_out``; ``nn.TransformerEncoderLayer``/``Encoder`` for
    :func:`TransformerEncoderLayer`/:func:`TransformerEncoder`, each layer's modules taken
    in the order the block runs them); layers
    without weights (activations, pooling, ``nn.Flatten``, dropout) may differ in number and
    names. A layer of one's own with weights is refused by name (its arrays' meaning is
    unknown here): set its arrays with ``model.load_state_dict(state, strict=False)``.
    Settings that are no arrays are not in a state dict, so they cannot be checked:
    build the backprop layers with the same ones (eps, momentum, stride, padding,
    padding_mode, a GroupNorm's number of groups, an attention's number of heads, a
    transformer block's ``norm_first`` and activation; a LayerNorm's weights would load
    into a GroupNorm of the same width, a pre-norm block's into a post-norm one). The
    options that decide which arrays a layer has (``bias``, ``affine``,
    ``track_running_stats``, ``elementwise_affine``) are checked:
    a difference is named. They are paired in order: the k-th PyTorch module with
    parameters gives the k-th backprop layer with parameters (the order the module
    defines them in, its ``state_dict``'s, not the order its ``forward`` calls them: a
    ``head`` defined before a ``body`` of the same shape loads without error into the
    model's first layer, so compare one prediction after loading). Layouts are converted: a
    Linear's ``weight`` (out, in) becomes ``W`` (in, out), its transpose; convolution
    weights have the same layout in both; ``weight``/``bias`` of a normalization become
    ``gamma``/``beta``. PyTorch's ``num_batches_tracked`` is kept only for a BatchNorm
    built with ``momentum=None`` (the only one that uses it).

    Args:
        model: The backprop model (or layer) to fill.
        state_dict: ``torch_module.state_dict()`` (tensors or arrays).

    Returns:
        A state dict for ``model.load_state_dict`` (nothing is written to ``model``).

    Example::

        model.load_state_dict(bp.from_torch(model, torch_module.state_dict()))

    Raises:
        TypeError: ``state_dict`` is not a mapping, or an entry holds no numbers.
        ValueError: the two hold different numbers of layers with weights, a pair
            whose entries differ by name or number (the message names the first such
            pair), or an entry of another shape than the layer needs (the message names
            the PyTorch key, the shape expected in PyTorch's layout and the one given).
            Kinds whose entries share names (``weight``, ``bias``) are not told apart:
            an ``nn.Embedding`` loads into a ``Dense`` without bias of the transposed
            shape.
    """
    out: dict[str, np.ndarray] = {}
    for prefix, path, layer, kind, entries in _pairs(model, state_dict):
        names = _NAMES[kind]
        for name, ours in names.items():  # an entry one side has and the other has not
            if name == "num_batches_tracked":  # kept only with momentum=None
                continue
            have = ours in layer.params or ours in layer.buffers
            if have != (name in entries):
                _refuse(path, layer, kind, name, ours, have)
        for name, value in entries.items():
            ours = names[name]
            dst = layer.params.get(ours, layer.buffers.get(ours))
            if dst is None:
                continue  # num_batches_tracked of a layer with a momentum
            where = f"{path}.{ours}" if path else ours
            flip = name in _TRANSPOSED.get(kind, ())  # (out, in) -> (in, out): x @ W
            shape = () if ours == "num_batches_tracked" else dst.shape[::-1] if flip else dst.shape
            key = _torch_key(prefix, name)
            array = _checked(np.asarray(tensor_values(value, "from_torch", key)), key, shape,
                             f"{where} of {layer!r}", flip)
            if ours == "num_batches_tracked":
                array = array.reshape(1)
            out[where] = array.T if flip else array
    return out


def _checked(array: np.ndarray, key: str, shape: tuple[int, ...], where: str, flip: bool
             ) -> np.ndarray:
    """``array``, checked to hold numbers of PyTorch's ``shape``: a mismatch is named here
    by PyTorch's key and shapes, not later by ``load_state_dict`` in backprop's names and
    layout."""
    if array.dtype.kind not in "iuf":  # (bools are no weights)
        raise TypeError(f"from_torch: expected {key!r} as numbers for {where}, got "
                        f"dtype {array.dtype}")
    if array.shape != shape and not (shape == () and array.size == 1):
        hint = (": backprop's (in, out) layout, not PyTorch's (out, in); pass the PyTorch "
                "state dict as it is" if flip and array.shape == shape[::-1] else "")
        raise ValueError(f"from_torch: expected {key!r} of shape {shape} for {where}, "
                         f"got shape {array.shape}{hint}")
    return array


def _torch_key(prefix: str, name: str) -> str:
    """The PyTorch key of entry ``name`` of module ``prefix`` as :func:`_by_layer` split it
    (``lstm[l1_reverse]``, ``weight_ih_l0`` -> ``lstm.weight_ih_l1_reverse``)."""
    layer = re.fullmatch(r"(.*)\[l(\d+)(_reverse)?\]", prefix)
    if layer is not None:
        prefix, name = layer[1], f"{name.removesuffix('_l0')}_l{layer[2]}{layer[3] or ''}"
    return f"{prefix}.{name}" if prefix else name


def _refuse(path: str, layer: Layer, kind: str, name: str, ours: str, have: bool) -> None:
    """The ValueError for a PyTorch module with ``name`` where the layer lacks ``ours``, or
    the other way round, naming the constructor argument that decides it."""
    flag = (_LAYER_NORM_FLAGS if kind in ("LayerNorm", "RMSNorm") else _FLAGS).get(name, name)
    value = not have  # what the layer would need for the PyTorch module as it is
    where = f"{path or '(top)'} {layer!r}"
    if have:
        raise ValueError(f"from_torch: expected the PyTorch module for {where} with {name!r}, "
                         f"as the layer has {ours!r}; got one without it (build the layer "
                         f"with {flag}={value}, or PyTorch's with {flag}={not value})")
    raise ValueError(f"from_torch: expected the PyTorch module for {where} without {name!r}, "
                     f"as the layer has no {ours!r} (build the layer with {flag}={value}, or "
                     f"PyTorch's with {flag}={not value})")


def _pairs(model: Any, state_dict: Any) -> list[tuple[str, str, Any, str, dict[str, Any]]]:
    """``(PyTorch prefix, path, layer, kind, PyTorch entries)`` for each layer with weights,
    in order."""
    if not isinstance(state_dict, Mapping):
        module = callable(getattr(state_dict, "state_dict", None))
        raise TypeError(f"from_torch: expected a PyTorch state dict (a mapping of names to "
                        f"tensors), got {type(state_dict).__name__}"
                        + (": pass the module's state_dict()" if module else ""))
    if not isinstance(model, Layer):
        raise TypeError(f"from_torch: expected a backprop model or layer first, got "
                        f"{type(model).__name__}: from_torch(model, torch_module.state_dict())")
    theirs: dict[str, dict[str, Any]] = {}  # module prefix -> its entries, in order
    for key, value in state_dict.items():
        prefix, _, name = str(key).rpartition(".")
        theirs.setdefault(prefix, {})[name] = value
    theirs = _by_layer(_in_module_order(_attention_merged(theirs)))
    ours = [(path, layer) for path, layer in _leaves(model) if layer.params or layer.buffers]
    theirs = encoder_layers_in_order(theirs, [_kind(layer) for _, layer in ours])
    if len(ours) != len(theirs):
        bare = [la for _, la in _leaves(model) if _kind(la) in _NAMES
                and not (la.params or la.buffers)]  # affine=False and the like
        hint = (f"; {', '.join(map(repr, bare))} has no weights and is not counted (build it "
                f"with the options of its PyTorch module)" if bare else "")
        normed = [la for _, la in ours if _kind(la) in ("BatchNorm", "LayerNorm", "GroupNorm",
                                                          "RMSNorm", "InstanceNorm")]
        if normed and len(theirs) < len(ours):  # a module with no arrays is not in the state
            hint += (f"; a PyTorch norm with elementwise_affine=False or affine=False (and no "
                     f"running statistics) has no entries: build {normed[0]!r} with that "
                     f"option too")
        if any(k.startswith("weight_hr") for entries in theirs.values() for k in entries):
            hint += ("; a PyTorch LSTM with proj_size (weight_hr keys) is refused: its h is "
                     "projected before it is fed back; add a Dense(H, P) after the layer")
        elif any(prefix.endswith("_reverse]") for prefix in theirs):
            hint += ("; a bidirectional PyTorch LSTM/GRU/RNN loads into Bidirectional(LSTM(D, "
                     "H)), one of num_layers=k into k of them stacked, Sequential(["
                     "Bidirectional(LSTM(D, H)), Bidirectional(LSTM(2 * H, H))]) for k = 2")
        elif any(prefix.endswith("]") for prefix in theirs):
            hint += ("; a PyTorch LSTM/GRU/RNN of num_layers=k loads into k stacked layers, "
                     "Sequential([LSTM(D, H), LSTM(H, H)]) for k = 2")
        listed = ", ".join(repr(la) for _, la in ours) or "none"
        raise ValueError(f"from_torch: expected {len(ours)} PyTorch modules with weights "
                         f"(for {listed}), got {len(theirs)}: {list(theirs)}{hint}")
    pairs = []
    reverse = _backward_layers(model)
    for (path, layer), (prefix, entries) in zip(ours, theirs.items(), strict=True):
        kind = _kind(layer)
        if kind == "Recurrent":
            _one_layer(prefix, path, layer, entries)
        if prefix.endswith("_reverse]") and id(layer) not in reverse:
            raise ValueError(f"from_torch: expected a PyTorch module matching {path or '(top)'}"
                             f" {layer!r}, got {prefix}, the reverse direction of a "
                             f"bidirectional module (its _reverse keys), which belongs in a "
                             f"Bidirectional's backward_layer: Bidirectional({layer!r})")
        if id(layer) in reverse and prefix.endswith("]") and not prefix.endswith("_reverse]"):
            raise ValueError(f"from_torch: expected the reverse direction of a bidirectional "
                             f"PyTorch module (keys ending in _reverse) for {path} {layer!r}, "
                             f"a Bidirectional's backward_layer, got {prefix}, the next stacked "
                             f"layer of a one-direction module of num_layers > 1")
        if kind == "MultiheadAttention":
            _self_attention(prefix, path, layer, entries)
        if kind not in _NAMES:  # a layer of one's own: its arrays' meaning is unknown here
            raise ValueError(f"from_torch: converts backprop's built-in layers only, and "
                             f"{path or '(top)'} {layer!r} is none of them (a layer of your "
                             f"own?), against PyTorch's {prefix or '(top)'} with "
                             f"{sorted(entries)}: copy such arrays by hand (model."
                             f"load_state_dict(state, strict=False) takes any of the model's "
                             f"arrays by name, as in model.state_dict())")
        if not set(entries) <= set(_NAMES[kind]):
            raise ValueError(f"from_torch: expected a PyTorch module matching {prefix or '(top)'}"
                             f" -> {path or '(top)'} {layer!r}, got one with {sorted(entries)}")
        pairs.append((prefix, path, layer, kind, entries))
    return pairs


def _by_layer(theirs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A PyTorch LSTM/GRU/RNN of ``num_layers=k`` (keys ``..._l0`` to ``..._l{k-1}``) as k
    modules of one layer each, named ``prefix[l0]``..., with ``_l0`` keys: backprop stacks
    one-layer modules. A bidirectional one's ``_reverse`` keys become a module of their own
    after each layer's, ``prefix[l0_reverse]``, for a Bidirectional's backward layer
    (``proj_size`` keys are left for :func:`_one_layer` to refuse)."""
    out: dict[str, dict[str, Any]] = {}
    for prefix, entries in theirs.items():
        parts: dict[tuple[int, bool], dict[str, Any]] | None = {}
        for name, value in entries.items():
            match = re.fullmatch(r"((?:weight|bias)_(?:ih|hh))_l(\d+)(_reverse)?", name)
            if match is None or parts is None:
                parts = None
                break
            parts.setdefault((int(match[2]), bool(match[3])), {})[f"{match[1]}_l0"] = value
        layers = sorted({k for k, _ in parts or ()})
        if not parts or layers != list(range(len(layers))) or list(parts) == [(0, False)]:
            out[prefix] = entries
            continue
        for k, reverse in sorted(parts):
            out[f"{prefix}[l{k}{'_reverse' if reverse else ''}]"] = parts[k, reverse]
    return out


def _attention_merged(theirs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """An ``nn.MultiheadAttention``'s entries as one module: its ``out_proj.weight`` and
    ``out_proj.bias`` (the prefix ``<mha>.out_proj``) join ``in_proj_weight`` and
    ``in_proj_bias`` (the prefix ``<mha>``) under the names ``out_proj.weight``/``.bias``."""
    out: dict[str, dict[str, Any]] = {}
    for prefix, entries in theirs.items():
        parent, _, last = prefix.rpartition(".")
        owner = out.get(parent) if last == "out_proj" else None
        if owner is not None and {"in_proj_weight", "q_proj_weight"} & set(owner):
            owner.update({f"out_proj.{name}": value for name, value in entries.items()})
        else:
            out[prefix] = dict(entries)
    return out


def _self_attention(prefix: str, path: str, layer: Layer, entries: dict[str, Any]) -> None:
    """Refuse a PyTorch MultiheadAttention with separate key/value sizes (``kdim``/``vdim``:
    ``q_proj_weight``...) or learnt extra keys (``add_bias_kv``: ``bias_k``, ``bias_v``)."""
    extra = sorted(set(entries) & {"q_proj_weight", "k_proj_weight", "v_proj_weight",
                                   "bias_k", "bias_v"})
    if extra:
        raise ValueError(f"from_torch: expected a PyTorch self-attention module for "
                         f"{path or '(top)'} {layer!r} (in_proj_weight, out_proj), got "
                         f"{prefix or '(top)'} with {extra} (kdim/vdim or add_bias_kv): "
                         f"backprop's MultiheadAttention projects one input of embed_dim "
                         f"features, with no extra key and value")


def _one_layer(prefix: str, path: str, layer: Layer, entries: dict[str, Any]) -> None:
    """Refuse a PyTorch LSTM/GRU/RNN with a projection (keys ``weight_hr``; :func:`_by_layer`
    has split ``num_layers=k`` and the ``_reverse`` direction into modules of one layer)."""
    extra = sorted(name for name in entries  # weight_hr_l0, weight_hr_l0_reverse, weight_ih_l1
                   if "_l" in name and (not name.endswith("_l0") or name.startswith("weight_hr")))
    numbers = [re.search(r"_l(\d+)(?:_reverse)?$", name) for name in entries]
    later = sorted({int(m[1]) for m in numbers if m})
    if later and later[0] > 0 and not any(n.startswith("weight_hr") for n in entries):
        # _by_layer leaves a module whose layers do not start at 0 as it is
        raise ValueError(f"from_torch: expected a PyTorch module of layers 0 to k - 1 for "
                         f"{path or '(top)'} {layer!r} (keys ending in _l0, _l1...), got "
                         f"{prefix or '(top)'} with keys of layer(s) {later} of a num_layers > 1 "
                         f"module without those of layer 0 ({extra}): pass the module's whole "
                         f"state dict, into as many stacked layers")
    if extra:
        raise ValueError(f"from_torch: expected a PyTorch module without a projection for "
                         f"{path or '(top)'} {layer!r} (keys ending in a layer number, _l0), "
                         f"got {prefix or '(top)'} with {extra} (proj_size): backprop's "
                         f"recurrent layers feed h back as it is; add a Dense(H, P) after the "
                         f"layer to project its output")
    shape = getattr(entries.get(next((n for n in entries if n.startswith("weight_hh")), ""),
                                None), "shape", ())  # (G·H, H): LSTM 4 gates, GRU 3, RNN 1
    kinds = {4: "an LSTM", 3: "a GRU", 1: "an RNN"}
    g = shape[0] // shape[1] if len(shape) == 2 and shape[1] and not shape[0] % shape[1] else 0
    if g in kinds and g != layer.gates:
        raise ValueError(f"from_torch: expected the weights of {kinds[layer.gates]} for "
                         f"{path or '(top)'} {layer!r}, got those of {kinds[g]} "
                         f"({prefix or '(top)'}: weight_hh of shape {tuple(shape)}); use "
                         f"bp.{kinds[g].split()[1]}")


def _backward_layers(model: Layer) -> set[int]:
    """``id`` of every Bidirectional's backward layer in ``model``: the layers that take a
    PyTorch module's ``_reverse`` weights."""
    layers = [model, *(layer for _, layer in model.named_layers())]
    return {id(la.backward_layer) for la in layers if type(la).__name__ == "Bidirectional"}


def _in_module_order(theirs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The modules in PyTorch's order: by index where every path is numbers (an
    ``nn.Sequential``: a sorted or reordered dict would put "10" before "2"), else as
    given, refused where numbered siblings come out of order (a named module's order is
    only the dict's)."""
    paths = [p.split(".") if p else [] for p in theirs]
    if all(c.isdigit() for path in paths for c in path):
        return dict(sorted(theirs.items(),
                           key=lambda item: [int(c) for c in item[0].split(".") if c]))
    for before, after in zip(paths, paths[1:], strict=False):
        for a, b in zip(before, after, strict=False):
            if a != b:
                if a.isdigit() and b.isdigit() and int(b) < int(a):
                    raise ValueError(f"from_torch: expected the state dict in module order, "
                                     f"got {'.'.join(after)!r} after {'.'.join(before)!r} "
                                     "(pass torch_module.state_dict() as it comes)")
                break
    return theirs


def _leaves(model: Any) -> list[tuple[str, Any]]:
    """``(path, layer)`` of every layer without sub-layers, in model order."""
    if not model.children():
        return [("", model)]
    return [(path, layer) for path, layer in model.named_layers() if not layer.children()]


def _kind(layer: Any) -> str:
    for cls in type(layer).__mro__:
        if cls.__name__ in ("Dense", "BatchNorm", "LayerNorm", "GroupNorm", "RMSNorm", "PReLU",
                            "Embedding"):
            return cls.__name__
        if cls.__name__ in ("Conv1D", "Conv2D", "Conv3D", "ConvTranspose1D", "ConvTranspose2D",
                            "ConvTranspose3D"):
            return "Conv"
        if cls.__name__ in ("InstanceNorm1D", "InstanceNorm2D", "InstanceNorm3D"):
            return "InstanceNorm"
        if cls.__name__ in ("LSTM", "GRU", "RNN"):
            return "Recurrent"
        if cls.__name__ == "MultiheadAttention":
            return "MultiheadAttention"
    return type(layer).__name__
