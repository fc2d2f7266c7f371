"""More PyTorch and Keras habits that name backprop's way (see :mod:`._other_names`, whose
tables these extend before its hints are installed): a layer's ``weight`` and running
statistics, list methods of a model, ``model.history``, a Parameter's ``numel()``, the
in-place ``clip_grad_norm_``, a schedule's ``step()``, Keras' metric classes, loss
strings and callbacks (in every submodule's ``__getattr__``)."""

from __future__ import annotations

from . import _other_names

_WEIGHT = ("backprop names each array by its role in the layer's formula: layer.params['W'] "
           "(Dense's is (in_features, out_features), PyTorch's weight transposed; a "
           "convolution's has PyTorch's layout), 'gamma' and 'beta' for a norm's scale and "
           "shift, and layer.params['b'] the bias (layer.bias is the constructor's flag, as "
           "Keras' use_bias); bp.from_torch(model, state_dict) converts PyTorch's names")
_RUNNING = "layer.buffers['running_mean'] and layer.buffers['running_var'] hold them"
_RECURRENT = ("layer.params['W'] and ['U'] are weight_ih_l0 and weight_hh_l0 transposed, "
              "['b'] and ['b_h'] the two biases")
_LIST = _other_names.LAYER_ATTRS["append"]
_ARRAY = ("a Parameter is (name, value, grad): p.value is the array (p.value.size, "
          "p.value.shape), and model.num_params counts every trainable scalar")
_UNSET = ("a layer's __init__ calls super().__init__(dtype=dtype) first, which sets "
          "dtype, params, grads and buffers")

LAYER_ATTRS = {
    "weight": _WEIGHT,
    "running_mean": _RUNNING, "running_var": _RUNNING,
    "weight_ih_l0": _RECURRENT, "weight_hh_l0": _RECURRENT,
    "bias_ih_l0": _RECURRENT, "bias_hh_l0": _RECURRENT,
    "insert": _LIST, "extend": _LIST, "pop": _LIST,
    "history": ("fit returns the History (history = model.fit(...); history.history maps "
                "each logged name to its values by epoch); a model keeps none"),
    "trainable_weights": ("model.parameters() lists Parameter(name, value, grad), every one "
                          "that an optimizer built on it trains"),
    "named_children": "model.children() gives the direct layers, model.named_layers() all",
    "output_shape": "model.summary(input_shape=...) shows each layer's output shape",
    "requires_grad_": _other_names.LAYER_SETTINGS["requires_grad"],
    # read on a layer of one's own whose __init__ skipped super().__init__() (a PyTorch
    # habit is super().__init__() with no dtype; a forgotten call is the usual slip)
    **dict.fromkeys(("params", "grads", "buffers", "dtype"), _UNSET),
}
PARAMETER_ATTRS = {"numel": _ARRAY, "shape": _ARRAY, "size": _ARRAY, "ndim": _ARRAY,
                   "dtype": _ARRAY}
_SCHEDULE = ("a backprop schedule is a function of the epoch (OneCycleLR's and CyclicLR's of "
             "the optimizer step): schedule(epoch) returns the rate; fit sets it with "
             "callbacks=[bp.LearningRateScheduler(schedule)], and a loop of one's own sets "
             "opt.lr = schedule(epoch) at the start of each epoch")
SCHEDULE_ATTRS = dict.fromkeys(("step", "get_last_lr", "last_epoch", "optimizer"), _SCHEDULE)
PLATEAU_ATTRS = {"step": ("bp.ReduceLROnPlateau is fit's callback (callbacks=[...]); a loop "
                          "of one's own takes its rule, bp.schedules.ReduceLROnPlateau(...): "
                          "opt.lr = rule.step(val_loss, opt.lr) after each epoch")}
# Keras' metric classes -> the name fit(metrics=[...]) takes
_METRICS = {"AUC": "auc", "Precision": "precision", "Recall": "recall", "F1Score": "f1",
            "Accuracy": "accuracy", "BinaryAccuracy": "binary_accuracy",
            "CategoricalAccuracy": "accuracy", "SparseCategoricalAccuracy": "accuracy",
            "TopKCategoricalAccuracy": "top_k_accuracy", "MeanAbsoluteError": "mae",
            "SparseTopKCategoricalAccuracy": "top_k_accuracy", "MeanSquaredError": "mse",
            "R2Score": "r2"}
_CALLBACK = "subclass bp.Callback and write the hooks it needs (on_epoch_end(self, epoch, logs))"
BUILT_IN = {
    **{cls: (f"backprop's metrics are functions, named in fit(metrics=['{name}']) (and "
             f"evaluate's); bp.metrics.get('{name}') gives the function")
       for cls, name in _METRICS.items()},
    "History": "fit returns a bp.History (backprop.History)",
    "LambdaCallback": _CALLBACK, "RemoteMonitor": _CALLBACK, "TensorBoard": _CALLBACK,
    "BackupAndRestore": ("fit(..., callbacks=[bp.ModelCheckpoint(path)], resume=path) goes "
                         "on from the last checkpoint of an interrupted run"),
    "Activation": ("each activation is a layer of its own: bp.ReLU(), bp.Sigmoid(), "
                   "bp.Tanh(), bp.Softmax(), bp.GELU()..."),
    "Input": ("backprop needs no input layer: each layer takes its sizes (Dense(in_features, "
              "out_features)), and model.summary(input_shape) shows the shapes"),
    "models": "bp.Sequential builds a model and bp.load(path) loads one",
}
BUILT_IN["InputLayer"] = BUILT_IN["Input"]
# scikit-learn's and Keras' data and metric helpers -> ours
_SCALER = ("bp.data.Standardizer() (fit on the training set, then transform; scikit-learn's "
           "StandardScaler) or x_train, x_test = bp.data.standardize(x_train, x_test)")
BUILT_IN.update({
    "StandardScaler": _SCALER, "Standardizer": _SCALER, "standardize": _SCALER,
    "to_categorical": "bp.data.one_hot(y, num_classes) (float32 rows)",
    "one_hot": "bp.data.one_hot(y, num_classes) (float32 rows)",
    "train_test_split": ("bp.data.train_test_split(x, y, test_size=0.2, stratify=True, "
                         "rng=0) (in backprop.data)"),
    **{f"{name}_score": f"bp.metrics.{name} (fit(metrics=['{name}']))"
       for name in ("accuracy", "f1", "precision", "recall", "r2", "roc_auc")},
    "to_torch": ("backprop loads PyTorch weights with model.load_state_dict(bp.from_torch("
                 "model, torch_model.state_dict())); the other way, model.state_dict() gives "
                 "the arrays by name (a Dense's W is torch's weight transposed, (in, out))"),
    "load_digits": "bp.datasets.digits() (scikit-learn's 1,797 8x8 digits, split for you)",
})
_KEYWORDS = (" (everything after {} is keyword-only: Keras' positional order would land in "
             "other settings; name each one, as {}=...)")
POSITIONAL = {"EarlyStopping": _KEYWORDS.format("monitor", "patience"),
              "ReduceLROnPlateau": _KEYWORDS.format("monitor", "factor"),
              "ModelCheckpoint": _KEYWORDS.format("path and monitor", "save_best_only")}
# Keras' loss strings -> the Loss object fit takes
KERAS_LOSSES = {
    **dict.fromkeys(("mse", "mean_squared_error", "MSE"), "bp.MeanSquaredError()"),
    **dict.fromkeys(("mae", "mean_absolute_error", "MAE"), "bp.MeanAbsoluteError()"),
    **dict.fromkeys(("sparse_categorical_crossentropy", "categorical_crossentropy",
                     "cross_entropy", "crossentropy"),
                    "bp.SoftmaxCrossEntropy() (on logits; labels or one-hot rows)"),
    "binary_crossentropy": ("bp.BCELoss() (on probabilities, after a Sigmoid) or "
                            "bp.BinaryCrossEntropyWithLogits() (on logits)"),
    "huber": "bp.Huber()",
    **dict.fromkeys(("kl_divergence", "kld"), "bp.KLDivLoss(reduction='batchmean') on "
                                              "log-probabilities (after bp.LogSoftmax())"),
    "hinge": ("not built in: Keras' mean(max(0, 1 - y * output)) on +1/-1 targets; "
              "bp.MultiMarginLoss() is the multi-class hinge on labels"),
    "poisson": "bp.PoissonNLLLoss(log_input=False)", "nll": "bp.NLLLoss()",
}


def loss_hint(loss: object) -> str:
    """What a loss given as a string (Keras' ``loss="mse"``) is here, or ""."""
    if not isinstance(loss, str):
        return ""
    known = KERAS_LOSSES.get(loss) or KERAS_LOSSES.get(loss.lower())
    return (f" (backprop takes a Loss object: {loss!r} is {known})" if known else
            " (backprop takes a Loss object, as bp.MeanSquaredError(), not a name)")


OTHER_NAMES = {
    "clip_grad_norm_": ("clip_grad_norm", " (in place too, and it returns the total norm)"),
    "clip_grad_value_": ("clip_grad_value", " (in place too)"),
    "MultiplicativeLR": ("LearningRateScheduler", " (Keras' form, given the rate so far: "
                         "LearningRateScheduler(lambda epoch, lr: lr * factor(epoch) if "
                         "epoch else lr))"),
    "CosineDecay": ("CosineAnnealingLR", " (Keras' CosineDecay(lr, decay_steps, alpha) is "
                    "CosineAnnealingLR(lr, decay_steps, eta_min=alpha * lr) in "
                    "LearningRateScheduler(..., per_step=True); it rises again after T_max)"),
    "ExponentialDecay": ("ExponentialLR", " (Keras' ExponentialDecay(lr, decay_steps, rate) "
                         "is ExponentialLR(lr, rate ** (1 / decay_steps)) in "
                         "LearningRateScheduler(..., per_step=True); staircase=True: "
                         "StepLR(lr, decay_steps, rate))"),
}
BUILT_IN["ChainedScheduler"] = (
    "backprop's schedules are functions of the epoch: apply several at once in one function, "
    "LearningRateScheduler(lambda epoch: f(epoch) * g(epoch) / lr), or one after another "
    "with SequentialLR")
# Keras' global max pools and TimeDistributed -> what does their work here
_GLOBAL_MAX = ("backprop has no global max pool: AdaptiveMaxPool{d}D(1) then Flatten() takes "
               "the max over {axes} of channels-first {shape} ({first} for Keras' "
               "channels-last input)")
BUILT_IN.update({
    "GlobalMaxPooling1D": _GLOBAL_MAX.format(d=1, axes="the steps", shape="(N, C, T)",
                                             first="Permute((2, 1)) first"),
    "GlobalMaxPooling2D": _GLOBAL_MAX.format(d=2, axes="H and W", shape="(N, C, H, W)",
                                             first="Permute((3, 1, 2)) first"),
    "TimeDistributed": ("backprop needs no TimeDistributed: Dense (PyTorch's Linear), the "
                        "activations, Dropout and LayerNorm work over the last axis of (N, T, "
                        "F), each step alone, so TimeDistributed(Dense(units)) is Dense(F, "
                        "units); a padding mask passes through them"),
})
FUNCTION_HINTS = {
    "fit": {"weighted_metrics": ("fit's metrics are unweighted, as Keras' metrics=; "
                                 "sample_weight= and class_weight= weigh the loss")},
    "evaluate": {"steps": "evaluate scores every sample of x (pass fewer samples)"},
    "predict": {"steps": "predict runs every sample of x (pass fewer samples)"},
}

_GLOBAL = "the global norm over all parameters (PyTorch's clip_grad_norm_)"
CLIP_HINTS = {  # Keras' optimizer keywords (an optimizer's own: clip_norm=, or the functions)
    "clipnorm": "Keras' clipnorm clips each gradient by its own norm, which backprop does not "
                f"offer; backprop's clip_norm= is {_GLOBAL}, Keras' global_clipnorm",
    "global_clipnorm": f"backprop calls it clip_norm: {_GLOBAL}",
    "clipvalue": "backprop clips values with bp.clip_grad_value(model.parameters(), value), "
                 "called between backward and step in a training loop (PyTorch's "
                 "clip_grad_value_)"}


def extend(namespace: dict[str, object]) -> None:
    """Add these to :mod:`._other_names`' tables, and the Parameter's hints."""
    _other_names.LAYER_ATTRS.update(LAYER_ATTRS)
    _other_names.OTHER_NAMES.update(OTHER_NAMES)
    _other_names.BUILT_IN.update(BUILT_IN)
    _other_names.POSITIONAL.update(POSITIONAL)
    for name, hints in FUNCTION_HINTS.items():
        _other_names.FUNCTION_HINTS[name].update(hints)
    _other_names.KEYWORD_HINTS["LinearWarmup"] = {
        "total_iters": "backprop calls it warmup_epochs (LinearLR's total_iters)",
        "optimizer": "a schedule takes the rate, not the optimizer: LinearWarmup(0.1, 5)"}
    for hints in _other_names.KEYWORD_HINTS.values():
        if "foreach" in hints:  # the optimizers (PyTorch's foreach= is theirs alone)
            hints.update(CLIP_HINTS)
    for name, hints in _other_names.KEYWORD_HINTS.items():  # Conv2D(..., activation=...)
        if "activation" in hints:
            hints["activation"] = f"add the activation as its own layer: {name}(...), ReLU()"
    _other_names.add_attribute_hints(namespace["Parameter"], PARAMETER_ATTRS)  # type: ignore
    _other_names.add_attribute_hints(namespace["schedules"].Schedule, SCHEDULE_ATTRS)
    _other_names.add_attribute_hints(namespace["ReduceLROnPlateau"], PLATEAU_ATTRS)  # the callback
