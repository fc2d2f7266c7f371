"""Layers: each with its forward, its hand-derived backward and its math in the docstring."""

from .activations import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from .adaptive import AdaptiveAvgPool1D, AdaptiveAvgPool2D, AdaptiveMaxPool1D, AdaptiveMaxPool2D
from .avgpool import AvgPool1D, AvgPool2D, GlobalAvgPool
from .base import Container, Layer, Parameter
from .conv import Conv1D, Conv2D
from .conv_transpose import ConvTranspose1D, ConvTranspose2D
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding
from .groupnorm import GroupNorm
from .more_activations import CELU, SELU, LogSoftmax, Mish, Softsign
from .normalization import BatchNorm, LayerNorm
from .piecewise import Hardsigmoid, Hardswish, Hardtanh, ReLU6
from .pooling import MaxPool1D, MaxPool2D
from .prelu import PReLU
from .reshape import Flatten, Permute, Reshape
from .residual import Residual
from .resize import Upsample
from .smooth import SiLU, Softplus
from .softmax import Softmax

__all__ = [
    "Layer", "Container", "Parameter", "Dense",
    "Identity", "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "SiLU", "Softplus", "Sigmoid", "Tanh",
    "Softmax", "ReLU6", "Hardtanh", "Hardsigmoid", "Hardswish", "SELU", "CELU", "Mish", "Softsign",
    "LogSoftmax",
    "Conv1D", "Conv2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool",
    "ConvTranspose1D", "ConvTranspose2D",
    "AdaptiveAvgPool1D", "AdaptiveAvgPool2D", "AdaptiveMaxPool1D", "AdaptiveMaxPool2D", "Upsample",
    "Flatten", "Reshape", "Permute", "BatchNorm", "LayerNorm", "GroupNorm", "Dropout",
    "Residual", "Embedding",
]
