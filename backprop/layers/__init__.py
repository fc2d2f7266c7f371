"""Layers: each with its forward, its hand-derived backward and its math in the docstring."""

from .activations import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Container, Layer, Parameter
from .dense import Dense

__all__ = [
    "Layer", "Container", "Parameter", "Dense",
    "Identity", "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softmax",
]
