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
            ``shuffle``, ``seed``.
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
            keys: Quantities to draw (default: every recorded one without a
                ``val_`` prefix or a ``/``, which marks per-layer diagnostics);
                each one's ``val_`` twin joins it in the same panel.
            figsize: Figure size in inches (default 4 x 3 per panel).

        Returns:
            The matplotlib Figure.

        Raises:
            ImportError: matplotlib is not installed.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise ImportError("History.plot: expected matplotlib to be installed, got none; "
                              'install it with pip install "backprop[notebooks]"') from err
        keys = keys or [k for k in self.history if not k.startswith("val_") and "/" not in k]
        missing = [k for k in keys if k not in self.history]
        if missing or not keys:
            raise ValueError(f"History.plot: expected keys among {list(self.history)}, "
                             f"got {keys!r}")
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

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        flag = ", interrupted" if self.interrupted else ""
        return f"History(epochs={len(self.epoch)}, last={last}{flag})"
