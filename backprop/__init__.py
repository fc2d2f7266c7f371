"""backprop: NumPy neural networks whose every layer is explicit.

Each layer has its own ``forward`` and hand-derived ``backward``, chained by the
delta recursion ``δ⁽ˡ⁾ = (W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾) ⊙ f′(z⁽ˡ⁾)``.
"""

from . import initializers
from .gradcheck import GradCheckResult, check_gradients
from .layers import (
    ELU, GELU, Container, Dense, Identity, Layer, LeakyReLU, Parameter, ReLU, Sigmoid,
    Softmax, Tanh,
)
from .layers import (
    AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D, Dropout, Flatten, GlobalAvgPool,
    LayerNorm, MaxPool1D, MaxPool2D, Reshape, Residual,
)
from . import schedules
from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSProp, clip_grad_norm
from .schedules import (
    CosineAnnealingLR, ExponentialLR, LinearWarmup, StepLR,
)
from .losses import BinaryCrossEntropyWithLogits, Huber, Loss, MeanSquaredError, SoftmaxCrossEntropy
from .sequential import Sequential
from .bench import BenchResult, bench
from . import datasets
from .serialization import Checkpoint, load, load_checkpoint, register_layer, save
from . import data, metrics
from .callbacks import (
    Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau,
)
from .history import History
from .training import evaluate, fit, predict
from .trace import trace
from .monitor import GradientFlowMonitor, GradientFlowWarning
from .plots import plot_activation_histograms, plot_gradient_flow
from .display import formulas

__version__ = "0.1.0"

__all__ = [
    "initializers", "check_gradients", "GradCheckResult",
    "Layer", "Container", "Parameter", "Dense", "Identity", "ReLU", "LeakyReLU", "ELU", "GELU",
    "Sigmoid", "Tanh", "Softmax",
    "Conv1D", "Conv2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool",
    "Flatten", "Reshape", "BatchNorm", "LayerNorm", "Dropout", "Residual",
    "Loss", "MeanSquaredError", "SoftmaxCrossEntropy", "BinaryCrossEntropyWithLogits", "Huber",
    "Sequential", "bench", "BenchResult",
    "Optimizer", "SGD", "Adam", "AdamW", "RMSProp", "Adagrad", "clip_grad_norm",
    "datasets", "save", "load", "load_checkpoint", "register_layer", "Checkpoint",
    "schedules", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearWarmup",
    "data", "metrics", "fit", "evaluate", "predict", "History", "Callback", "EarlyStopping",
    "ModelCheckpoint", "LearningRateScheduler", "ReduceLROnPlateau",
    "trace", "GradientFlowMonitor", "GradientFlowWarning", "plot_gradient_flow",
    "plot_activation_histograms", "formulas",
]
