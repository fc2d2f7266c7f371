"""Optimizers with torch.optim semantics, updating the whole model in one pass.

A subclass writes two methods (Keras' split): :meth:`Optimizer.init_state`
creates its state arrays once, eagerly, and :meth:`Optimizer.update` applies one
step to an array ``p`` given its gradient ``g``. When the parameters are views of
one flat buffer (every ``Sequential``), ``update`` runs once over that buffer —
one vectorised pass instead of one small pass per layer — and each parameter's
state is a view of the flat state (``optimizer.state[i]``, parallel to
``optimizer.params``, as in tinygrad). Otherwise it runs per parameter. Parameter
groups (PyTorch's ``param_groups``) are one optimizer of the same class per group, each
over its part of the buffer (:mod:`.groups`).

Hyperparameters mean exactly what they mean in ``torch.optim``, so equal settings give
equal trajectories. They are Python floats, which (NEP 50) never upcast float32 arrays.

:mod:`.base` holds the base class, :mod:`.clip` gradient clipping, :mod:`.rules` the
update rules SGD, RMSProp and Adagrad, :mod:`.adam` the Adam family, :mod:`.more` RAdam
and Adadelta.
"""

from .adam import Adam, Adamax, AdamW, NAdam
from .base import Optimizer
from .clip import clip_grad_norm, clip_grad_value
from .more import Adadelta, RAdam
from .rules import SGD, Adagrad, RMSProp

RMSprop = RMSProp  # the spelling of torch.optim and Keras, for habits

OPTIMIZERS: dict[str, type[Optimizer]] = {  # by name, for the command line
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "nadam": NAdam, "adamax": Adamax,
    "rmsprop": RMSProp, "adagrad": Adagrad, "radam": RAdam, "adadelta": Adadelta}

__all__ = ["OPTIMIZERS", "SGD", "Adadelta", "Adagrad", "Adam", "Adamax", "AdamW", "NAdam",
           "Optimizer", "RAdam", "RMSProp", "RMSprop", "clip_grad_norm",
           "clip_grad_value"]
