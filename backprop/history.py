"""History: the per-epoch record that ``fit`` returns."""

from __future__ import annotations

from typing import Any

from .callbacks import Callback


class History(Callback):
    """Losses and metrics of every epoch, as ``fit`` returns them (Keras' History).

    One passed among ``fit``'s callbacks is the one it fills (emptied first: one
    History per fit) and returns, as in Keras.

    Attributes:
        history: ``{"loss": [...], "accuracy": [...], "val_loss": [...], ...}``,
            one value per epoch (Python floats).
        epoch: Epoch indices, counted from 0 (a resumed fit continues them).
        params: The fit settings: ``epochs``, ``initial_epoch``, ``batch_size``,
            ``steps`` (per epoch), ``samples``, ``validation_samples``, ``metrics``,
            ``shuffle``, ``drop_last``, ``seed``.
        seed: The seed of the fit's Generator, which orders the batches; pass it back
            to ``fit(seed=...)`` to repeat the run (fit draws one from OS entropy, or
            from :func:`backprop.manual_seed`'s sequence, when given None) from the same
            starting weights. Weights and Dropout masks come from the layers' own
            ``rng=`` seeds (or ``manual_seed``), which a repeat needs as well.
        interrupted: True when Ctrl-C ended training early.
        skipped_batches: Steps skipped for a non-finite loss or gradient
            (``on_nonfinite="skip"``).
    """

    _order = 1  # after user callbacks, which may add keys such as "lr"

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict[str, Any] = {}
        self.seed: int | None = None
        self.interrupted = False
        self.skipped_batches = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        values = {}
        for key, value in logs.items():
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"History: expected every log value as a number, got "
                                f"{value!r:.60} for {key!r} at epoch {epoch} (a callback "
                                f"added it: keep other things on the callback itself)"
                                ) from None
        self.epoch.append(epoch)
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able copy of everything recorded (saved in checkpoints)."""
        return {"history": {k: list(v) for k, v in self.history.items()},
                "epoch": list(self.epoch), "seed": self.seed,
                "skipped_batches": self.skipped_batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's record."""
        self.history = {k: [float(x) for x in v] for k, v in state["history"].items()}
        self.epoch = [int(e) for e in state["epoch"]]
        self.seed = state["seed"]
        self.skipped_batches = int(state["skipped_batches"])

    def plot(self, keys: list[str] | None = None, *, figsize: tuple[float, float] | None = None
             ) -> Any:
        """Draw each quantity's training and validation curves against the epoch.

        Args:
            keys: Quantities to draw, a list of names or one name (default: every
                recorded one without a ``val_`` prefix or a ``/``, which marks per-layer
                diagnostics); each one's ``val_`` twin joins it in the same panel.
            figsize: Figure size in inches (default 4 x 3 per panel).

        Returns:
            The matplotlib Figure.

        Raises:
            ImportError: matplotlib is not installed.
            ValueError: nothing is recorded, or a key is not.
            TypeError: ``keys`` is not a name or a list of names.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise ImportError("History.plot: expected matplotlib to be installed, got none; "
                              'install it with pip install "backprop[notebooks]"') from err
        keys = self._keys_to_plot(keys)
        fig, axes = plt.subplots(1, len(keys), figsize=figsize or (4 * len(keys), 3),
                                 squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            for name in (key, "val_" + key):
                if name in self.history:
                    values = self.history[name]
                    epochs = [e + 1 for e in self.epoch[len(self.epoch) - len(values):]]
                    ax.plot(epochs, values, marker=".", label=name)
            ax.set(xlabel="epoch", title=key)
            ax.legend()
        fig.tight_layout()
        return fig

    def _keys_to_plot(self, keys: Any) -> list[str]:
        """``keys`` as a list of recorded names (a str is one name), or a named error."""
        who, recorded = "History.plot", list(self.history)
        if not recorded:
            raise ValueError(f"{who}: expected a History with at least one epoch recorded, "
                             "got an empty one (a fit that trained no epoch, or none yet)")
        if isinstance(keys, str):
            keys = [keys]
        elif keys is not None and not (isinstance(keys, (list, tuple))
                                       and all(isinstance(k, str) for k in keys)):
            raise TypeError(f"{who}: expected keys as a list of names, got "
                            f"{type(keys).__name__} {keys!r:.60}")
        if not keys:
            keys = [k for k in recorded if not k.startswith("val_") and "/" not in k]
            if not keys:
                raise ValueError(f"{who}: expected a quantity to draw by default, got no "
                                 f"quantity without a '/' or 'val_' prefix among {recorded}; "
                                 f"name them, as keys={recorded[:2]}")
        missing = [k for k in keys if k not in self.history]
        if missing:
            raise ValueError(f"{who}: expected keys among {recorded}, got "
                             f"{', '.join(map(repr, missing))} not among them")
        return list(keys)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        flag = ", interrupted" if self.interrupted else ""
        return f"History(epochs={len(self.epoch)}, last={last}{flag})"
