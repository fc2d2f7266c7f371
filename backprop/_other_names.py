"""What PyTorch and Keras call backprop's classes, for a helpful AttributeError.

``bp.Linear`` raises ``AttributeError: module 'backprop' has no attribute 'Linear';
backprop calls it Dense``: one name per thing in the API, and a pointer to it for
users coming from either framework.
"""

from __future__ import annotations

_LOGITS = " (it takes logits, not probabilities)"

# other framework's name -> (backprop's name, a note)
OTHER_NAMES: dict[str, tuple[str, str]] = {
    # PyTorch
    "Module": ("Layer", ""),
    "Linear": ("Dense", " (its W is (in_features, out_features), torch's weight transposed)"),
    "Conv1d": ("Conv1D", ""), "Conv2d": ("Conv2D", ""),
    "MaxPool1d": ("MaxPool1D", ""), "MaxPool2d": ("MaxPool2D", ""),
    "AvgPool1d": ("AvgPool1D", ""), "AvgPool2d": ("AvgPool2D", ""),
    "AdaptiveAvgPool1d": ("GlobalAvgPool", " (output size 1)"),
    "AdaptiveAvgPool2d": ("GlobalAvgPool", " (output size 1)"),
    "BatchNorm1d": ("BatchNorm", " (for (N, C), (N, C, L) and (N, C, H, W))"),
    "BatchNorm2d": ("BatchNorm", " (for (N, C), (N, C, L) and (N, C, H, W))"),
    "CrossEntropyLoss": ("SoftmaxCrossEntropy", _LOGITS),
    "NLLLoss": ("SoftmaxCrossEntropy", _LOGITS),
    "MSELoss": ("MeanSquaredError", ""),
    "HuberLoss": ("Huber", ""),
    "BCEWithLogitsLoss": ("BinaryCrossEntropyWithLogits", ""),
    "BCELoss": ("BinaryCrossEntropyWithLogits", _LOGITS),
    "LinearLR": ("LinearWarmup", ""),
    # Keras
    "Model": ("Sequential", ""),
    "BatchNormalization": ("BatchNorm", ""),
    "LayerNormalization": ("LayerNorm", ""),
    "MaxPooling1D": ("MaxPool1D", ""), "MaxPooling2D": ("MaxPool2D", ""),
    "AveragePooling1D": ("AvgPool1D", ""), "AveragePooling2D": ("AvgPool2D", ""),
    "GlobalAveragePooling1D": ("GlobalAvgPool", ""),
    "GlobalAveragePooling2D": ("GlobalAvgPool", ""),
    "CategoricalCrossentropy": ("SoftmaxCrossEntropy", _LOGITS + " and one-hot rows"),
    "SparseCategoricalCrossentropy": ("SoftmaxCrossEntropy", _LOGITS),
    "BinaryCrossentropy": ("BinaryCrossEntropyWithLogits", _LOGITS),
}


def missing(name: str) -> AttributeError:
    """The AttributeError for ``backprop.<name>``, pointing at backprop's own name."""
    message = f"module 'backprop' has no attribute {name!r}"
    if name in OTHER_NAMES:
        ours, note = OTHER_NAMES[name]
        message += f"; backprop calls it {ours}{note}"
    return AttributeError(message)
