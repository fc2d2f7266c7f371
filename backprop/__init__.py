"""backprop: NumPy neural networks whose every layer is explicit.

Each layer has its own ``forward`` and hand-derived ``backward``, chained by the
delta recursion ``δ⁽ˡ⁾ = (W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾) ⊙ f′(z⁽ˡ⁾)`` (textbook notation, W of shape
(out, in); with backprop's ``W`` of shape (in, out) and a batch of rows it is
``(dy @ W.T) * f′(z)``).
"""

from . import _other_names, _torch_habits, data, datasets, initializers, metrics, schedules
from .bench import BenchResult, bench
from .callbacks import (
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)
from .display import formulas
from .gradcheck import GradCheckResult, check_gradients
from .history import History
from .initializers import manual_seed
from .interop import from_torch
from .layers import (
    CELU,
    ELU,
    GELU,
    GLU,
    GRU,
    LSTM,
    RNN,
    SELU,
    AdaptiveAvgPool1D,
    AdaptiveAvgPool2D,
    AdaptiveAvgPool3D,
    AdaptiveMaxPool1D,
    AdaptiveMaxPool2D,
    AdaptiveMaxPool3D,
    AlphaDropout,
    AvgPool1D,
    AvgPool2D,
    AvgPool3D,
    BatchNorm,
    Bidirectional,
    ChannelShuffle,
    CircularPad1D,
    CircularPad2D,
    CircularPad3D,
    ConstantPad1D,
    ConstantPad2D,
    ConstantPad3D,
    Container,
    Conv1D,
    Conv2D,
    Conv3D,
    ConvTranspose1D,
    ConvTranspose2D,
    ConvTranspose3D,
    Dense,
    Dropout,
    Dropout1D,
    Dropout2D,
    Dropout3D,
    Embedding,
    FeatureAlphaDropout,
    Flatten,
    Fold,
    GlobalAvgPool,
    GroupNorm,
    Hardshrink,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Identity,
    InstanceNorm1D,
    InstanceNorm2D,
    InstanceNorm3D,
    Layer,
    LayerNorm,
    LeakyReLU,
    LocalResponseNorm,
    LogSigmoid,
    LogSoftmax,
    LPPool1D,
    LPPool2D,
    Masking,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
    Mish,
    MultiheadAttention,
    Parameter,
    Permute,
    PixelShuffle,
    PixelUnshuffle,
    PositionalEmbedding,
    PReLU,
    ReflectionPad1D,
    ReflectionPad2D,
    ReflectionPad3D,
    ReLU,
    ReLU6,
    ReplicationPad1D,
    ReplicationPad2D,
    ReplicationPad3D,
    Reshape,
    Residual,
    RMSNorm,
    RReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softmin,
    Softplus,
    Softshrink,
    Softsign,
    Tanh,
    Tanhshrink,
    Threshold,
    Unflatten,
    Unfold,
    Upsample,
    ZeroPad1D,
    ZeroPad2D,
    ZeroPad3D,
)
from .losses import (
    BCELoss,
    BinaryCrossEntropyWithLogits,
    HingeEmbeddingLoss,
    Huber,
    KLDivLoss,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    MultiLabelMarginLoss,
    MultiLabelSoftMarginLoss,
    MultiMarginLoss,
    NLLLoss,
    PoissonNLLLoss,
    SmoothL1Loss,
    SoftMarginLoss,
    SoftmaxCrossEntropy,
)
from .monitor import GradientFlowMonitor, GradientFlowWarning
from .optimizers import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    NAdam,
    Optimizer,
    RAdam,
    RMSProp,
    RMSprop,
    clip_grad_norm,
    clip_grad_value,
)
from .plots import plot_activation_histograms, plot_gradient_flow
from .schedules import (
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    ExponentialLR,
    LinearWarmup,
    MultiStepLR,
    OneCycleLR,
    PolynomialLR,
    SequentialLR,
    StepLR,
)
from .sequential import Sequential
from .serialization import Checkpoint, load, load_checkpoint, register_layer, save
from .threads import get_num_threads, set_num_threads
from .trace import trace
from .training import evaluate, fit, predict
from .transformer import TransformerEncoder, TransformerEncoderLayer

__version__ = "0.1.0"

_torch_habits.extend(globals())  # more of them: layer.weight, p.numel(), clip_grad_norm_
_other_names.add_hints(globals())  # model.eval(), Dropout(p=0.5): what backprop does instead


def __getattr__(name: str) -> None:
    """``bp.Linear`` and other PyTorch/Keras names: an AttributeError naming ours."""
    from ._other_names import missing

    raise missing(name)


__all__ = [
    # layers and models
    "Layer", "Container", "Parameter", "Sequential",
    "Dense", "Identity", "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "SiLU", "Softplus", "Sigmoid",
    "Tanh", "Softmax", "ReLU6", "Hardtanh", "Hardsigmoid", "Hardswish", "SELU", "CELU", "Mish",
    "Softsign", "LogSoftmax",
    "LogSigmoid", "Tanhshrink", "Softshrink", "Hardshrink", "Threshold", "Softmin", "GLU",
    "Conv1D", "Conv2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool",
    "Conv3D", "MaxPool3D", "AvgPool3D",
    "ConvTranspose1D", "ConvTranspose2D", "ConvTranspose3D",
    "AdaptiveAvgPool1D", "AdaptiveAvgPool2D", "AdaptiveMaxPool1D", "AdaptiveMaxPool2D", "Upsample",
    "AdaptiveAvgPool3D", "AdaptiveMaxPool3D",
    "Flatten", "Unflatten", "Reshape", "Permute", "PixelShuffle", "PixelUnshuffle",
    "ZeroPad1D", "ZeroPad2D", "ConstantPad1D", "ConstantPad2D", "ReflectionPad1D",
    "ReflectionPad2D", "ReplicationPad1D", "ReplicationPad2D", "CircularPad1D", "CircularPad2D",
    "BatchNorm", "LayerNorm", "GroupNorm", "Dropout",
    "Residual", "Embedding",
    "InstanceNorm1D", "InstanceNorm2D", "Dropout1D", "Dropout2D",
    "ZeroPad3D", "ConstantPad3D", "ReflectionPad3D", "ReplicationPad3D", "CircularPad3D",
    "InstanceNorm3D", "Dropout3D", "RMSNorm",
    "Unfold", "Fold", "LocalResponseNorm", "LPPool1D", "LPPool2D", "ChannelShuffle",
    "AlphaDropout", "FeatureAlphaDropout", "RReLU",
    "LSTM", "GRU", "RNN", "MultiheadAttention", "PositionalEmbedding", "Bidirectional",
    "Masking",
    "TransformerEncoderLayer", "TransformerEncoder",
    # losses, optimizers, schedules
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "SoftmaxCrossEntropy",
    "BinaryCrossEntropyWithLogits", "Huber", "NLLLoss", "KLDivLoss",
    "BCELoss", "SmoothL1Loss", "SoftMarginLoss", "MultiLabelSoftMarginLoss", "PoissonNLLLoss",
    "HingeEmbeddingLoss", "MultiMarginLoss", "MultiLabelMarginLoss",
    "Optimizer", "SGD", "Adam", "AdamW", "NAdam", "Adamax", "RMSProp", "RMSprop", "Adagrad",
    "RAdam", "Adadelta", "clip_grad_norm", "clip_grad_value",
    "schedules", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearWarmup",
    "OneCycleLR", "CosineAnnealingWarmRestarts", "PolynomialLR", "ConstantLR", "CyclicLR",
    "SequentialLR",
    # training
    "fit", "evaluate", "predict", "History", "Callback", "EarlyStopping", "ModelCheckpoint",
    "LearningRateScheduler", "ReduceLROnPlateau", "data", "datasets", "metrics",
    # saving
    "save", "load", "load_checkpoint", "register_layer", "Checkpoint", "from_torch", "manual_seed",
    # checking and looking inside
    "check_gradients", "GradCheckResult", "trace", "GradientFlowMonitor", "GradientFlowWarning",
    "plot_gradient_flow", "plot_activation_histograms", "formulas", "bench", "BenchResult",
    "initializers", "set_num_threads", "get_num_threads",
]
