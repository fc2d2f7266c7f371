"""Layers: each with its forward, its hand-derived backward and its math in the docstring."""

from .activations import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from .adaptive import (
    AdaptiveAvgPool1D,
    AdaptiveAvgPool2D,
    AdaptiveAvgPool3D,
    AdaptiveMaxPool1D,
    AdaptiveMaxPool2D,
    AdaptiveMaxPool3D,
)
from .alpha_dropout import AlphaDropout, FeatureAlphaDropout
from .attention import MultiheadAttention
from .avgpool import AvgPool1D, AvgPool2D, AvgPool3D, GlobalAvgPool
from .base import Container, Layer, Parameter
from .bidirectional import Bidirectional
from .channel_shuffle import ChannelShuffle
from .conv import Conv1D, Conv2D, Conv3D
from .conv_transpose import ConvTranspose1D, ConvTranspose2D, ConvTranspose3D
from .dense import Dense
from .dropout import Dropout, Dropout1D, Dropout2D, Dropout3D
from .embedding import Embedding
from .fold import Fold, Unfold
from .gated import GLU, Softmin
from .groupnorm import GroupNorm
from .instancenorm import InstanceNorm1D, InstanceNorm2D, InstanceNorm3D
from .local_response import LocalResponseNorm
from .lppool import LPPool1D, LPPool2D
from .masking import Masking
from .more_activations import CELU, SELU, LogSoftmax, Mish, Softsign
from .normalization import BatchNorm, LayerNorm
from .padding import (
    CircularPad1D,
    CircularPad2D,
    CircularPad3D,
    ConstantPad1D,
    ConstantPad2D,
    ConstantPad3D,
    ReflectionPad1D,
    ReflectionPad2D,
    ReflectionPad3D,
    ReplicationPad1D,
    ReplicationPad2D,
    ReplicationPad3D,
    ZeroPad1D,
    ZeroPad2D,
    ZeroPad3D,
)
from .piecewise import Hardsigmoid, Hardswish, Hardtanh, ReLU6
from .pooling import MaxPool1D, MaxPool2D, MaxPool3D
from .position import PositionalEmbedding
from .prelu import PReLU
from .recurrent import GRU, LSTM, RNN
from .reshape import Flatten, Permute, Reshape, Unflatten
from .residual import Residual
from .resize import Upsample
from .rmsnorm import RMSNorm
from .rrelu import RReLU
from .shrink import Hardshrink, LogSigmoid, Softshrink, Tanhshrink, Threshold
from .shuffle import PixelShuffle, PixelUnshuffle
from .smooth import SiLU, Softplus
from .softmax import Softmax

__all__ = [
    "Layer", "Container", "Parameter", "Dense",
    "Identity", "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "SiLU", "Softplus", "Sigmoid", "Tanh",
    "Softmax", "ReLU6", "Hardtanh", "Hardsigmoid", "Hardswish", "SELU", "CELU", "Mish", "Softsign",
    "LogSoftmax", "LogSigmoid", "Tanhshrink", "Softshrink", "Hardshrink", "Threshold", "Softmin",
    "GLU",
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
]


def __getattr__(name: str) -> None:
    """Keras' and PyTorch's names for what backprop spells otherwise: an AttributeError
    naming ours (``backprop.layers.AUC``: a metric named in ``fit(metrics=['auc'])``)."""
    from .._other_names import missing

    raise missing(name, "backprop.layers")
