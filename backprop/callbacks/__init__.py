"""Callbacks: code that ``fit`` runs at the start and end of training, epochs and batches.

Subclass :class:`Callback` and override the hooks you need; ``fit`` calls a
batch hook only if a callback overrides it, so unused hooks cost nothing in
the training loop. Before ``on_train_begin`` every callback gets four
attributes: ``model``, ``optimizer``, ``history`` (the :class:`History` being
filled) and ``fit_state`` (the running fit: ``epoch``, ``stop``,
``log_keys``, ``training_state()``). To end training after the current batch,
set ``self.fit_state.stop = True``.

Order: callbacks run in the order given, then :class:`History` records the
epoch's logs, then :class:`ModelCheckpoint` saves — so a checkpoint holds the
state at the very end of the epoch, every other callback's changes included.
"""

from .base import Callback, EarlyStopping
from .checkpoint import ModelCheckpoint
from .lr import LearningRateScheduler, ReduceLROnPlateau

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint",
           "LearningRateScheduler", "ReduceLROnPlateau"]


def __getattr__(name: str) -> None:
    """Keras' callbacks whose work ``fit`` does itself (``TerminateOnNaN``, ``CSVLogger``)
    or that backprop spells otherwise: an AttributeError saying what it does instead."""
    from .._other_names import missing

    raise missing(name, "backprop.callbacks")
