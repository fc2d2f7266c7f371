"""What PyTorch and Keras call backprop's classes, for a helpful AttributeError.

``bp.Linear`` raises ``AttributeError: module 'backprop' has no attribute 'Linear';
backprop calls it Dense``: one name per thing in the API, and a pointer to it for
users coming from either framework.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from ._recurrent_hints import recurrent_keyword_hints

_LOGITS = " (it takes logits, not probabilities)"
_BATCH_NORM = " (for (N, C), (N, C, L), (N, C, H, W) and (N, C, D, H, W))"

# other framework's name -> (backprop's name, a note)
OTHER_NAMES: dict[str, tuple[str, str]] = {
    # PyTorch
    "Module": ("Layer", ""), "load_model": ("load", " (bp.load(path); model.save(path))"),
    "Linear": ("Dense", " (its W is (in_features, out_features), torch's weight transposed)"),
    "UpsamplingNearest2d": ("Upsample", " (mode='nearest', its default)"),
    "UpsamplingBilinear2d": ("Upsample", " (UpsamplingBilinear2d(scale_factor=s) is Upsample("
                                         "scale_factor=s, mode='bilinear', align_corners=True))"),
    "BatchNorm1d": ("BatchNorm", _BATCH_NORM),
    "BatchNorm2d": ("BatchNorm", _BATCH_NORM),
    "BatchNorm3d": ("BatchNorm", _BATCH_NORM),
    "CrossEntropyLoss": ("SoftmaxCrossEntropy", _LOGITS),
    "MSELoss": ("MeanSquaredError", ""),
    "L1Loss": ("MeanAbsoluteError", ""),
    "Swish": ("SiLU", ""),
    "HuberLoss": ("Huber", ""),
    "BCEWithLogitsLoss": ("BinaryCrossEntropyWithLogits", ""),
    "LinearLR": ("LinearWarmup", " (LinearWarmup(lr, warmup_epochs, start_factor, "
                                 "end_factor=...))"),
    "TransformerDecoderLayer": ("TransformerEncoderLayer", " (backprop has no decoder: no "
                                "cross-attention to a memory; TransformerEncoderLayer(E, H, "
                                "causal=True) is a decoder-only, GPT-style block)"),
    "Transformer": ("TransformerEncoder", " (the encoder stack only: TransformerEncoder("
                                          "TransformerEncoderLayer(E, H), num_layers); no "
                                          "decoder or cross-attention)"),
    "TransformerDecoder": ("TransformerEncoder", " (no cross-attention: a stack of "
                                                 "TransformerEncoderLayer(E, H, causal=True) "
                                                 "is a decoder-only model)"),
    "LambdaLR": ("LearningRateScheduler", " (a function epoch -> lr, the rate itself rather "
                                          "than a factor of it; per_step=True for steps)"),
    # Keras
    "Model": ("Sequential", ""),
    "BatchNormalization": ("BatchNorm", ""),
    "LayerNormalization": ("LayerNorm", ""),
    "GroupNormalization": ("GroupNorm", " (GroupNorm(num_groups, num_channels))"),
    "SpatialDropout1D": ("Dropout1D", " (channels first, NCL)"),
    "SpatialDropout2D": ("Dropout2D", " (channels first, NCHW)"),
    "SpatialDropout3D": ("Dropout3D", " (channels first, NCDHW)"),
    "Conv1DTranspose": ("ConvTranspose1D", " (channels first, NCL)"),
    "Conv2DTranspose": ("ConvTranspose2D", " (channels first, NCHW)"),
    "Conv3DTranspose": ("ConvTranspose3D", " (channels first, NCDHW)"),
    "MaxPooling1D": ("MaxPool1D", ""), "MaxPooling2D": ("MaxPool2D", ""),
    "AveragePooling1D": ("AvgPool1D", ""), "AveragePooling2D": ("AvgPool2D", ""),
    "UpSampling1D": ("Upsample", " (UpSampling1D(size=k) is Upsample(scale_factor=k))"),
    "UpSampling2D": ("Upsample", " (UpSampling2D(size=k) is Upsample(scale_factor=k); "
                                 "interpolation='bilinear' is mode='bilinear')"),
    "UpSampling3D": ("Upsample", " (channels first, NCDHW; UpSampling3D(size=k) is "
                                 "Upsample(scale_factor=k))"),
    "ZeroPadding1D": ("ZeroPad1D", " (ZeroPadding1D(p) is ZeroPad1D(p); channels first)"),
    "ZeroPadding2D": ("ZeroPad2D", " (Keras' ((top, bottom), (left, right)) is PyTorch's "
                                   "order here: ZeroPad2D((left, right, top, bottom)))"),
    "ZeroPadding3D": ("ZeroPad3D", " (Keras' ((front, back), (top, bottom), (left, right)) "
                                   "is PyTorch's order here, channels first: "
                                   "ZeroPad3D((left, right, top, bottom, front, back)))"),
    "GlobalAveragePooling1D": ("GlobalAvgPool", " (channels_last=True for Keras' (N, T, C); "
                                                "it takes Keras' mask)"),
    "GlobalAveragePooling2D": ("GlobalAvgPool", " (channels_last=True for Keras' NHWC)"),
    "GlobalAveragePooling3D": ("GlobalAvgPool", " (channels_last=True for Keras' NDHWC)"),
    "CategoricalCrossentropy": ("SoftmaxCrossEntropy", _LOGITS + " and one-hot rows"),
    "SparseCategoricalCrossentropy": ("SoftmaxCrossEntropy", _LOGITS),
    "BinaryCrossentropy": ("BCELoss", " (probabilities, Keras' default; with from_logits=True "
                                      "it is BinaryCrossEntropyWithLogits)"),
    "Nadam": ("NAdam", " (Keras' Nadam is NAdam(params, lr=1e-3, eps=1e-7, "
                       "momentum_decay=1.0))"),
    "set_random_seed": ("manual_seed", ""),
    "seed": ("manual_seed", " (it seeds backprop's own draws, not np.random)"),
    "SimpleRNN": ("RNN", " (SimpleRNN(units) is RNN(input_size, units, return_sequences=False))"),
    "PositionEmbedding": ("PositionalEmbedding", " (added to its input: x + W[:T])"),
    "MultiHeadAttention": ("MultiheadAttention", " (self-attention: Keras' MultiHeadAttention("
                                                 "num_heads, key_dim) on x is MultiheadAttention("
                                                 "num_heads * key_dim, num_heads))"),
}
# PyTorch's 1d/2d/3d classes are backprop's 1D/2D/3D ones
OTHER_NAMES.update({f"{stem}{d}d": (f"{stem}{d}D", "") for d in (1, 2, 3) for stem in (
    "Conv", "ConvTranspose", "MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool",
    "ZeroPad", "ConstantPad", "ReflectionPad", "ReplicationPad", "CircularPad",
    "InstanceNorm", "Dropout")})
OTHER_NAMES.update({"LPPool1d": ("LPPool1D", ""), "LPPool2d": ("LPPool2D", "")})

# Keras callbacks whose work fit does itself -> what it does
BUILT_IN: dict[str, str] = {
    "TerminateOnNaN": ("fit stops at a NaN or infinite loss or gradient by itself, with a "
                       "RuntimeError naming the epoch and batch, and keeps the last finite "
                       "weights (fit(on_nonfinite='skip') skips such batches instead)"),
    "CSVLogger": ("fit returns a History whose .history maps each logged name to its values "
                  "by epoch (write it with csv.writer, or pandas.DataFrame(h.history).to_csv)"),
}


def missing(name: str, module: str = "backprop") -> AttributeError:
    """The AttributeError for ``backprop.<name>`` (or a submodule's), naming ours."""
    message = f"module {module!r} has no attribute {name!r}"
    other = {k.lower(): k for k in OTHER_NAMES}.get(name.lower())  # BatchNorm2D, conv2d too
    if other is not None:
        message += "; backprop calls it {}{}".format(*OTHER_NAMES[other])
    elif name in BUILT_IN:
        message += f"; {BUILT_IN[name]}"
    return AttributeError(message)


_MODE = ("backprop passes the mode with each call: forward(x, training=True) keeps what "
         "backward needs and draws Dropout masks, while forward(x), model(x), predict and "
         "evaluate run inference (training=False)")
_WEIGHTS = ("model.state_dict() gives copies of the parameters and buffers by name, and "
            "model.params the arrays themselves")
_DEVICE = ("backprop runs on NumPy arrays on the CPU; model.astype(np.float64) (or "
           "np.float32) changes the dtype")

# PyTorch/Keras attributes of a model or layer -> what to use instead
LAYER_ATTRS: dict[str, str] = {
    "train": _MODE, "eval": _MODE,
    "named_parameters": ("model.params maps names ('0.W', '0.b', ...) to arrays, and "
                         "model.parameters() lists Parameter(name, value, grad)"),
    "count_params": "model.num_params is the number of trainable scalars",
    "get_weights": _WEIGHTS, "weights": _WEIGHTS,
    "set_weights": ("model.load_state_dict(state) writes into the arrays in place (an "
                    "optimizer keeps working on them)"),
    "compile": "backprop has no compile step: fit() takes loss=, optimizer= and metrics=",
    "to": _DEVICE, "cuda": _DEVICE, "cpu": _DEVICE, "double": _DEVICE, "float": _DEVICE,
    "half": _DEVICE,
    "modules": "model.named_layers() walks every layer, model.children() the direct ones",
    "named_modules": "model.named_layers() walks every layer, model.children() the direct ones",
    "optimizer": ("a model holds no optimizer (fit(optimizer=...) takes one); a callback "
                  "has the fit's as self.optimizer (Keras: self.model.optimizer)"),
    "save_weights": "model.save(path) and bp.load(path) save and load a model",
    "load_weights": "model.save(path) and bp.load(path) save and load a model",
    "reset_states": "backprop (as Keras 3) calls it reset_state()",
    "append": "model.add(layer) appends one; to insert or remove, make a new Sequential",
    "predict_proba": ("model.predict(x) gives the raw output; bp.Softmax()(model.predict(x)) "
                      "gives probabilities (a Sigmoid() for one logit column)"),
    "predict_classes": "model.predict(x).argmax(-1) (Keras 2's predict_classes)",
}

# PyTorch attributes of an optimizer -> what to use instead (and Keras' learning_rate)
OPTIMIZER_ATTRS: dict[str, str] = {"learning_rate": "backprop calls it lr (opt.lr)",
    "defaults": ("opt.hyperparameters() gives the optimizer's settings, which parameter "
                 "groups take where they leave one out (opt.param_groups has each group's)")}
POSITIONAL: dict[str, str] = {}  # class -> a note on a TypeError of too many positionals


class _Hint:
    """A class attribute that is not there: reading it raises the AttributeError Python
    would, plus what backprop uses instead (``model.eval()``). A descriptor on the class,
    not ``__getattr__``, which would slow every attribute read of every layer. An
    instance's own attribute of that name, a subclass's, or one from a class later in the
    MRO (a mixin after ``Layer``) still wins; ``dir()`` leaves the name out."""

    def __init__(self, hint: str) -> None:
        self.hint = self.__doc__ = hint

    def __set_name__(self, owner: type, name: str) -> None:
        self.owner, self.name = owner, name

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        cls = type(obj) if obj is not None else objtype
        mro = cls.__mro__ if cls is not None else ()
        for later in mro[mro.index(self.owner) + 1:] if self.owner in mro else ():
            if self.name in vars(later):  # a mixin after the owner has it: that one
                found = vars(later)[self.name]
                return found.__get__(obj, cls) if hasattr(found, "__get__") else found
        if obj is None:
            raise AttributeError(f"type object {cls.__name__!r} has no attribute "
                                 f"{self.name!r}; {self.hint}", name=self.name, obj=cls)
        raise AttributeError(f"{cls.__name__!r} object has no attribute {self.name!r}; "
                             f"{self.hint}", name=self.name, obj=obj)


class _Setting(_Hint):
    """A :class:`_Hint` that assignment cannot get past either: ``layer.trainable =
    False`` (Keras' way to freeze) would otherwise set an attribute nothing reads, and
    the layer would go on training. A subclass that declares the name (a class
    attribute, a property) comes first in the MRO, so Python never calls this there."""

    def __set__(self, obj: object, value: Any) -> None:
        raise AttributeError(f"{type(obj).__name__}: {self.name} is not a setting here; "
                             f"{self.hint}", name=self.name, obj=obj)


_FREEZE = ("backprop freezes layers by leaving their parameters out of the optimizer: "
           "bp.Adam(model[2:].parameters()) trains the layers from index 2 on and leaves "
           "the others as they are (fit takes such an optimizer)")
LAYER_SETTINGS = {"trainable": _FREEZE, "requires_grad": _FREEZE}


def add_attribute_hints(cls: type, hints: dict[str, str], kind: type = _Hint) -> None:
    """Put a :class:`_Hint` on ``cls`` for each name it does not have, and a ``__dir__``
    that leaves them out (tab completion, ``dir()`` and mocks must not offer them)."""
    for name, hint in hints.items():
        if not hasattr(cls, name):
            descriptor = kind(hint)
            setattr(cls, name, descriptor)
            descriptor.__set_name__(cls, name)
    listed = cls.__dir__

    def __dir__(self: object) -> list[str]:
        return [n for n in listed(self)
                if not isinstance(inspect.getattr_static(self, n, None), _Hint)]

    cls.__dir__ = __dir__  # type: ignore[method-assign]


_ACTIVATION = "add the activation as its own layer: Dense(...), ReLU()"
_LEARNING_RATE = "backprop calls it lr"
_INPLACE = ("backprop's layers never overwrite their input (backward needs it, and notebooks "
            "look at it); the output is a new array")
_DIVISOR = ("AvgPool divides by the window's size (or, with count_include_pad=False, by its "
            "cells inside the input)")
_FLAT = ("backprop's optimizers always update every parameter in one vectorised pass over "
         "a flat buffer")
_INDICES = ("a training forward keeps the argmax for backward (layer._arg, by kernel offset); "
            "forward returns the maxima only")

# PyTorch/Keras keyword arguments backprop spells otherwise (or has not): class -> {kw: hint}
KEYWORD_HINTS: dict[str, dict[str, str]] = {
    "Dense": {"units": "Dense(in_features, out_features) takes both sizes",
              "activation": _ACTIVATION, "use_bias": "backprop calls it bias"},
    "Conv1D": {"filters": "backprop calls it out_channels (after in_channels)",
               "strides": "backprop calls it stride", "activation": _ACTIVATION,
               "use_bias": "backprop calls it bias"},
    "Conv2D": {"filters": "backprop calls it out_channels (after in_channels)",
               "strides": "backprop calls it stride", "activation": _ACTIVATION,
               "use_bias": "backprop calls it bias"},
    **{name: {"filters": "backprop calls it out_channels (after in_channels)",
              "strides": "backprop calls it stride", "activation": _ACTIVATION,
              "use_bias": "backprop calls it bias"}
       for name in ("ConvTranspose1D", "ConvTranspose2D", "ConvTranspose3D")},
    "MaxPool1D": {"pool_size": "backprop calls it kernel_size",
                  "strides": "backprop calls it stride",
                  "return_indices": _INDICES},
    "MaxPool2D": {"pool_size": "backprop calls it kernel_size",
                  "strides": "backprop calls it stride",
                  "return_indices": _INDICES},
    "AvgPool1D": {"pool_size": "backprop calls it kernel_size",
                  "strides": "backprop calls it stride", "divisor_override": _DIVISOR},
    "AvgPool2D": {"pool_size": "backprop calls it kernel_size",
                  "strides": "backprop calls it stride", "divisor_override": _DIVISOR},
    **{name: {"return_indices": "a training forward keeps the argmax for backward (layer._arg, "
                                "by flat spatial position); forward returns the maxima only"}
       for name in ("AdaptiveMaxPool1D", "AdaptiveMaxPool2D", "AdaptiveMaxPool3D")},
    "Upsample": {"interpolation": "backprop calls it mode",
                 "recompute_scale_factor": "Upsample takes 1 / scale_factor as the index ratio "
                                           "(PyTorch's default, None); give size= for "
                                           "input size / output size instead",
                 "antialias": "Upsample does not antialias"},
    **{name: {"p": "backprop calls it rate", "inplace": _INPLACE}
       for name in ("Dropout", "Dropout1D", "Dropout2D", "AlphaDropout",
                    "FeatureAlphaDropout")},
    "LeakyReLU": {"alpha": "backprop calls it negative_slope (as PyTorch and Keras 3)",
                  "inplace": _INPLACE},
    "BatchNorm": {"epsilon": "backprop calls it eps"},
    "LayerNorm": {"epsilon": "backprop calls it eps"},
    "GroupNorm": {"epsilon": "backprop calls it eps"},
    **{name: {"epsilon": "backprop calls it eps"}
       for name in ("InstanceNorm1D", "InstanceNorm2D")},
    "Huber": {"beta": "backprop calls it delta (SmoothL1Loss(beta=beta), PyTorch's, is "
                      "Huber(delta=beta) / beta)"},
    "EarlyStopping": {"restore_best_weights": "backprop calls it restore_best (default True)",
                      "verbose": "EarlyStopping prints nothing; stopped_epoch and "
                                 "best_epoch say what it did"},
    "ModelCheckpoint": {"save_weights_only": "a checkpoint always holds the weights, the "
                                             "optimizer and the training state (what resume "
                                             "needs); bp.save(model, path) saves a model alone",
                        "save_freq": "ModelCheckpoint saves once per epoch",
                        "filepath": "backprop calls it path",
                        "initial_value_threshold": "not offered: with save_best_only the "
                                                   "first epoch's value is the first best",
                        "verbose": "ModelCheckpoint prints nothing"},
    "LearningRateScheduler": {"verbose": "the rate of each epoch is logged as 'lr'"},
    "ReduceLROnPlateau": {"min_delta": "backprop calls it threshold; Keras' absolute "
                                       "min_delta is threshold_mode='abs' (and patience "
                                       "follows PyTorch: Keras' patience=p is p - 1 here)",
                          "verbose": "the rate of each epoch is logged as 'lr'"},
    "SoftmaxCrossEntropy": {"from_logits": "backprop's losses always take logits"},
    "BinaryCrossEntropyWithLogits": {"from_logits": "backprop's losses always take logits"},
    **{name: {"learning_rate": _LEARNING_RATE,
              "maximize": "backprop's optimizers minimize: negate the objective",
              "foreach": _FLAT, "fused": _FLAT,
              **({"decoupled_weight_decay": "AdamW(params, lr, weight_decay=...) is Adam "
                                            "with decoupled weight decay"}
                 if name == "Adam" else {})}
       for name in ("SGD", "Adam", "AdamW", "NAdam", "Adamax", "RMSProp", "Adagrad", "RAdam",
                    "Adadelta")},
    **{name: {"inplace": _INPLACE} for name in ("ReLU", "ELU", "GELU", "SiLU", "ReLU6", "Hardtanh",
                                                "Hardsigmoid", "Hardswish", "SELU", "CELU",
                                                "Mish", "Threshold", "RReLU")},
    "Softmax": {"dim": "backprop calls it axis (default -1)"},
    "LogSoftmax": {"dim": "backprop calls it axis (default -1)"},
    "Softmin": {"dim": "backprop calls it axis (default -1)"},
    "GLU": {"dim": "backprop calls it axis (default -1)"},
    "GlobalAvgPool": {"data_format": "channels_last=True is Keras' 'channels_last'",
                      "keepdims": "add Unflatten(1, (1, -1)) after it: (N, 1, C)"},
    "Embedding": {"input_dim": "backprop calls it num_embeddings (PyTorch's name)",
                  "output_dim": "backprop calls it embedding_dim (PyTorch's name)",
                  "embeddings_initializer": "backprop calls it init ('uniform' is Keras' "
                                            "default, 'standard_normal' PyTorch's)",
                  "sparse": "Embedding's gradient is a dense (V, D) array"},
    "PositionalEmbedding": {"sequence_length": "backprop calls it max_length",
                            "initializer": "backprop calls it init"},
    "PReLU": {"alpha_initializer": "backprop's init is the initial slope, a number (Keras' "
                                   "default is 0: init=0.0)",
              "shared_axes": "PReLU learns one slope (num_parameters=1) or one per channel "
                             "of axis 1 (num_parameters=C)"},
    **recurrent_keyword_hints(),
    "MultiheadAttention": {
        "key_dim": "MultiheadAttention(embed_dim, num_heads) takes E; each head's size is E / H",
        "value_dim": "each head's values have E / H features, as its queries and keys",
        "use_causal_mask": "backprop calls it causal, set at construction",
        "output_shape": "the output has embed_dim features; add a Dense(E, D) after it",
        "attention_axes": "attention runs over axis 1 of x (N, T, E), the sequence",
        "use_bias": "backprop calls it bias"},
}

# keyword arguments of fit/evaluate/predict in Keras -> backprop's way
_PROGRESS = "backprop calls it progress (True: a tqdm bar per epoch, False: silent)"
FUNCTION_HINTS: dict[str, dict[str, str]] = {
    "fit": {"verbose": _PROGRESS, "validation_freq": "fit validates after every epoch",
            "steps_per_epoch": "fit takes every batch of x each epoch (pass fewer samples)",
            "validation_batch_size": "fit scores the validation data in batches of its own"},
    "evaluate": {"verbose": "evaluate prints nothing"},
    "predict": {"verbose": "predict prints nothing"},
}

# scikit-learn's keyword arguments for backprop.data.train_test_split
SPLIT_HINTS = {"random_state": "backprop calls it rng (a seed or a Generator)",
               "seed": "train_test_split calls it rng (a seed or a Generator), as the layers",
               "shuffle": "train_test_split always shuffles (rng= seeds it)",
               "train_size": "give test_size (a fraction or a count) instead"}


def add_hints(namespace: dict[str, object]) -> None:
    """Install every hint: attributes of layers and optimizers, and keyword arguments."""
    add_attribute_hints(namespace["Layer"], LAYER_ATTRS)  # type: ignore[arg-type]
    add_attribute_hints(namespace["Layer"], LAYER_SETTINGS, _Setting)  # type: ignore[arg-type]
    add_attribute_hints(namespace["Optimizer"], OPTIMIZER_ATTRS)  # type: ignore[arg-type]
    add_attribute_hints(namespace["Parameter"], {"requires_grad": _FREEZE},  # type: ignore[arg-type]
                        _Setting)
    add_attribute_hints(namespace["Parameter"], {  # type: ignore[arg-type]
        "data": "p.value is the array itself (writing into it changes the weights)"})
    add_keyword_hints(namespace)
    add_function_hints(namespace)


def add_function_hints(namespace: dict[str, object]) -> None:
    """Wrap ``fit``, ``evaluate`` and ``predict`` (in the package and in the module the
    model's methods call) so that a Keras keyword names backprop's way."""
    from . import training

    for name, hints in FUNCTION_HINTS.items():
        wrapped = _with_hints(getattr(training, name), hints, name)
        setattr(training, name, wrapped)
        namespace[name] = wrapped
    from . import data

    data.train_test_split = _with_hints(data.train_test_split, SPLIT_HINTS,
                                        "train_test_split")


def _with_hints(fn: Any, hints: dict[str, str], name: str) -> Any:
    @functools.wraps(fn)
    def call(*args: object, **kwargs: object) -> Any:
        for key in kwargs:
            if key in hints:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}; "
                                f"{hints[key]}")
        try:
            return fn(*args, **kwargs)
        except TypeError as err:  # Python's own message names the class defining __init__
            if not str(err).startswith(f"{fn.__qualname__}()"):
                raise
            note = POSITIONAL.get(name, "") if "positional argument" in str(err) else ""
            raise TypeError(str(err).replace(fn.__qualname__, name, 1) + note) from None

    return call


def add_keyword_hints(namespace: dict[str, object]) -> None:
    """Wrap the ``__init__`` of each class in :data:`KEYWORD_HINTS` so that a keyword it
    does not take, but another framework does, names backprop's way
    (``Dropout(p=0.5)``: ``backprop calls it rate``). Other calls run unchanged."""
    for name, hints in KEYWORD_HINTS.items():
        cls = namespace[name]
        cls.__init__ = _with_hints(cls.__init__, hints, name)  # type: ignore[attr-defined]
