"""The command line: ``python -m backprop train`` and ``python -m backprop evaluate MODEL``.

``train`` fits a ReLU MLP (default 64-256-128-10, Adam with a cosine learning-rate
decay and label smoothing 0.1) on the handwritten digits bundled with scikit-learn,
shows a progress bar per epoch, prints the test accuracy and saves the model.
``--data`` also takes a folder of MNIST IDX files or an ``.npz`` holding x_train,
y_train, x_test and y_test. The features of an ``.npz`` (whose scale is unknown) are
standardized for training with the training set's mean and std, which are then folded
into the first layer, so the saved model takes the raw features. ``evaluate`` scores a
saved model on the same data.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from ._cli_args import check_memory, data_flag, layer_sizes, number, say, threads_flag, usable
from ._cli_input import fit_input
from ._slips import last_layer
from .callbacks import LearningRateScheduler
from .data import Standardizer
from .layers import Dense, ReLU, Softmax
from .losses import NLLLoss, SoftmaxCrossEntropy
from .metrics import accuracy
from .optimizers import OPTIMIZERS, SGD
from .schedules import CosineAnnealingLR
from .sequential import Sequential
from .serialization import load
from .threads import get_num_threads, limited

# Defaults chosen on digits, in a few seconds: median test accuracy over seeds 0-9 is
# 98.1% (SGD), 98.3% (Adagrad, Adadelta), 98.5% (RMSProp, RAdam), 98.6% (Adam, AdamW,
# NAdam, Adamax); every run 97.2-99.4% (NumPy 2.4). Label smoothing is worth about a point.
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "nadam": 4e-3, "adamax": 8e-3,
              "rmsprop": 1e-3, "adagrad": 0.05, "radam": 4e-3, "adadelta": 1.0}
DEFAULTS = {"hidden": (256, 128), "epochs": 30, "batch_size": 32, "label_smoothing": 0.1}
# Beyond these a run is a typo, not a model: refused before anything is allocated.
MAX_CLASSES = 2**20  # the output layer has 1 + the largest label units
MAX_PARAMS = 2**31  # 8 GiB of float32 weights, four times that with gradients and Adam


# -- data -----------------------------------------------------------------------------------
def load_data(spec: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], str]:
    """``(x_train, y_train), (x_test, y_test)`` and a name, from ``--data``.

    Images keep their shape ``(N, C, H, W)``; ``train`` flattens them, ``evaluate`` does
    for a model that takes rows (:func:`._cli_input.fit_input`). ``digits`` uses the fixed
    stratified split of :func:`backprop.datasets.digits` (seed 0), so every run and
    ``evaluate`` see the same test set.
    """
    path = usable(spec, "--data")
    if spec != "digits" and not path.exists():
        raise FileNotFoundError(f"--data: {spec!r} does not exist (expected 'digits', a folder "
                                f"of MNIST IDX files or a .npz file)")
    if spec == "digits":
        train, test = datasets.digits(seed=0, images=True)
    elif path.is_dir():
        train = datasets.load_mnist(path, "train", images=True, n_classes=256)  # uint8 labels
        test = datasets.load_mnist(path, "test", images=True, n_classes=256)  # (EMNIST: 62)
    elif path.suffix.lower() == ".npz":
        with warnings.catch_warnings(record=True) as caught:  # shown as the CLI's own notes
            warnings.simplefilter("always")
            train, test = datasets.load_npz(path)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    else:
        raise FileNotFoundError(f"--data: expected 'digits', a folder of MNIST IDX files or "
                                f"a .npz file, got {spec!r}")
    if train[0].shape[1:] != test[0].shape[1:]:
        raise ValueError(f"--data: expected test samples shaped like the training ones "
                         f"{train[0].shape[1:]}, got {test[0].shape[1:]} in {spec}")
    return train, test, "digits" if spec == "digits" else path.name


def n_classes(*labels: np.ndarray) -> int:
    """1 + the largest label: the width of the output layer (at most MAX_CLASSES)."""
    top = int(max(y.max(initial=0) for y in labels))
    if top >= MAX_CLASSES:
        raise ValueError(f"--data: expected class labels below 2**20 = {MAX_CLASSES:,} (the "
                         f"model gets 1 + the largest label outputs), got a label {top:,}")
    if top == 0:  # one output: a softmax of one class learns nothing
        raise ValueError("--data: expected labels of 2 or more classes (0 and 1 at least), "
                         "got only 0")
    return top + 1


def check_params(sizes: list[int]) -> None:
    """Refuse an MLP of more than MAX_PARAMS parameters before allocating it."""
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    if params > MAX_PARAMS:
        raise ValueError(f"--hidden: expected an MLP of at most 2**31 parameters, got "
                         f"{'-'.join(map(str, sizes))} with {params:,}")
    check_memory(sizes, params)


# -- model ----------------------------------------------------------------------------------
def fold_standardization(model: Sequential, scaler: Standardizer) -> None:
    """Make a model trained on ``(x - mean) / std`` take raw ``x``: the first Dense layer's
    ``W`` becomes ``W / std[:, None]`` and ``b`` becomes ``b - (mean / std) @ W``,
    computed in float64 and rounded once to the model's dtype. The folded model then
    adds terms of size ``|x|·|W| / std`` that cancel down to the standardized ones, so
    in float32 it loses about ``log10(|mean| / std)`` of its ~7 digits: nothing for
    pixels or the usual features, but features around 1e6 with unit spread shift logits
    by ~0.3 (the accuracy the CLI prints is the folded model's own)."""
    first = model[0]
    w, b = first.params["W"], first.params["b"]
    mean, std = (a.reshape(-1).astype(np.float64) for a in (scaler.mean_, scaler.std_))
    w64 = w.astype(np.float64)
    b[...] = b - (mean / std) @ w64
    w[...] = w64 / std[:, None]


# He init against Glorot (Dense's default) under the default flags, mean test accuracy over
# seeds 0-9: 98.58% against 98.27% on digits, kept; but 91.1% against 97.3% (seeds 0-4) on
# iris (4 standardized features, 20 epochs), where Glorot matches scikit-learn's MLP.
def build_mlp(sizes: list[int], seed: int) -> Sequential:
    """Dense-ReLU stack; He init for layers feeding a ReLU, Glorot for the logits."""
    rng = np.random.default_rng(seed)
    layers: list[Any] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        layers.append(Dense(d_in, d_out, init="glorot_uniform" if last else "he_uniform",
                            rng=rng))
        if not last:
            layers.append(ReLU())
    return Sequential(layers)


def blas_threads(threads: int) -> contextlib.AbstractContextManager:
    """Limit BLAS to ``threads`` threads (0: leave it alone), through threadpoolctl when it
    is installed, else NumPy's OpenBLAS directly (:func:`backprop.threads.limited`); a
    note where neither can.

    An MLP step multiplies small matrices; waking BLAS threads for each one costs more
    than it saves, and on a busy machine spinning threads can slow training tenfold.
    """
    if threads == 0:
        return contextlib.nullcontext()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores and threads > cores:
        print(f"note: --threads {threads} is more than the {cores} cores here: BLAS threads "
              f"past the cores slow training (each waits for the others)", file=sys.stderr)
    try:
        get_num_threads()
    except RuntimeError as err:
        print(f"note: --threads {threads} not applied: {err}", file=sys.stderr)
        return contextlib.nullcontext()
    return limited(threads)


def make_optimizer(name: str, model: Sequential, lr: float | None) -> Any:
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "sgd":
        return SGD(model.parameters(), lr=lr, momentum=0.9)
    return OPTIMIZERS[name](model.parameters(), lr=lr)


# -- saving ---------------------------------------------------------------------------------
def check_output(spec: str) -> Path:
    """``--output`` as a path that can be written: checked before training, not after."""
    path = usable(spec, "--output")  # ~ expanded, as --data's (a shell leaves --output=~/m)
    if path.is_dir():
        raise ValueError(f"--output: expected a file path, got the folder {spec!r}")
    if path.is_file() and not os.access(path, os.W_OK):  # as save would find, after training
        raise PermissionError(f"--output: expected a file that can be replaced, got {spec!r}, "
                              f"which is read-only")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--output: expected a path in an existing folder, got "
                                f"{spec!r} (there is no folder {str(path.parent)!r})")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"--output: expected a path in a writable folder, got {spec!r} "
                              f"({str(path.parent)!r} is not writable)")
    return path


def save_model(model: Sequential, path: Path) -> bool:
    """Save ``model``; if that fails after all (disk full), save it to the temporary folder
    instead, so the training is not lost, and say where in one line."""
    try:
        model.save(path)
        return True
    except OSError as err:
        reason = err.strerror or str(err)
    fallback = Path(tempfile.gettempdir()) / f"backprop-model-{os.getpid()}.npz"
    try:
        model.save(fallback)
        kept = f"; saved it to {fallback} instead"
    except OSError:
        kept = ""
    print(f"backprop train: error: could not save the model to {path} ({reason}){kept}",
          file=sys.stderr)
    return False


# -- commands -------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> int:
    output = check_output(args.output)
    data = usable(args.data, "--data")
    if data.is_file() and data.resolve() == output.resolve():
        raise ValueError(f"--output: expected a path other than --data's, got {args.output!r} "
                         f"for both (saving would replace the data with the model)")
    (x, y), (x_test, y_test), name = load_data(args.data)
    x, x_test = x.reshape(len(x), -1), x_test.reshape(len(x_test), -1)
    sizes = [x.shape[1], *args.hidden, n_classes(y, y_test)]
    top = sizes[-1]  # the classes: 1 + the largest label
    if top > 20 and len(y) < 5 * top:  # whole-number floats (a count, a price) as labels
        raise ValueError(f"--data: expected class labels with 5 or more training samples "
                         f"per class on average, got labels up to {top - 1} ({top} classes) "
                         f"for {len(y)} training samples (a regression target? the command "
                         f"line trains classifiers: use model.fit with bp.MeanSquaredError "
                         f"from Python)")
    check_params(sizes)
    model = build_mlp(sizes, args.seed)
    opt = make_optimizer(args.optimizer, model, args.lr)
    loss = SoftmaxCrossEntropy(args.label_smoothing)
    standardize = name.endswith(".npz") if args.standardize is None else args.standardize
    scaler = Standardizer().fit(x) if standardize else None
    say(f"data: {name}: {len(x)} train / {len(x_test)} test samples, {sizes[0]} features, "
          f"{sizes[-1]} classes" + ("; features standardized (the training set's mean and "
                                    "std, folded into the first layer)" if standardize else ""))
    present = set(np.unique(y).tolist()) | set(np.unique(y_test).tolist())
    absent = sorted(set(range(sizes[-1])) - present)
    if absent:
        say(f"note: the model has {sizes[-1]} outputs (1 + the largest label), and classes "
              f"{absent[:10]}{' ...' if len(absent) > 10 else ''} have no samples"
              + (" (labels counted from 1? number them from 0)" if absent == [0] else ""))
    unseen = sorted(set(np.unique(y_test).tolist()) - set(np.unique(y).tolist()))
    if unseen:
        say(f"note: test labels {unseen[:10]}{' ...' if len(unseen) > 10 else ''} never "
              f"occur in the training data")
    kind = "ReLU MLP" if len(sizes) > 2 else "softmax regression"
    smoothing = (f"; label smoothing {args.label_smoothing:g} (in the training loss, not the "
                 f"test loss)" if args.label_smoothing else "")
    epochs = f"{args.epochs} epoch{'s' * (args.epochs != 1)}"
    say(f"model: {'-'.join(map(str, sizes))} {kind}, {model.num_params:,} parameters; "
          f"{type(opt).__name__}(lr={opt.lr:g}), {epochs} of batch {args.batch_size}{smoothing}")
    start = time.perf_counter()
    with blas_threads(args.threads):
        try:
            history = model.fit(
                scaler.transform(x) if scaler else x, y, loss=loss, optimizer=opt,
                epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                metrics=["accuracy"], progress=not args.no_progress,
                callbacks=[LearningRateScheduler(CosineAnnealingLR(opt.lr, T_max=args.epochs))])
        except RuntimeError as err:  # diverged: fit's advice names its own arguments
            if "finite" not in str(err):
                raise
            raise RuntimeError(f"training diverged (a non-finite loss, gradient or weight) "
                               f"with {type(opt).__name__}(lr={opt.lr:g}): lower --lr, "
                               f"nothing was saved") from err
        if scaler:
            fold_standardization(model, scaler)
        seconds = time.perf_counter() - start
        if history.interrupted:  # Ctrl-C: keep what --output holds, save the partial model
            partial = output.with_name(f"{output.stem}.interrupted{output.suffix or '.npz'}")
            if save_model(model, partial):
                print(f"backprop train: interrupted after {len(history.epoch)} complete "
                      f"epoch(s); the partly trained model is saved to {partial.resolve()}, "
                      f"{output} is left as it was", file=sys.stderr)
            return 130
        saved = save_model(model, output)  # before evaluating: an error there keeps the model
        try:
            scores = model.evaluate(x_test, y_test, loss=SoftmaxCrossEntropy(),
                                    metrics=["accuracy"])
        except KeyboardInterrupt:
            where = f"the model is saved to {output.resolve()}" if saved else "not saved"
            print(f"backprop train: interrupted while scoring the test set; {where}",
                  file=sys.stderr)
            return 130
    took = f"{seconds:.1f} s" if seconds >= 0.9995 else f"{seconds * 1e3:.0f} ms"
    plain = ", without label smoothing" if args.label_smoothing else ""  # unlike the bar's
    say(f"trained in {took}; test accuracy {scores['accuracy']:.2%} "
          f"(loss {scores['loss']:.4f}{plain}) on {len(x_test)} samples")
    if saved:
        say(f"saved model to {output.resolve()}")
    return 0 if saved else 1


def evaluate(args: argparse.Namespace) -> int:
    model = load(args.model)
    spec = "digits" if args.data is None else args.data  # None: --data not given
    train_part, test_part, name = load_data(spec)
    x, y = test_part if args.split == "test" else train_part
    x = fit_input(model, x, name, given=args.data is not None)
    with blas_threads(args.threads):
        if type(last_layer(model)) is Softmax:  # probabilities: the cross-entropy is -log p_y
            p = model.predict(x, batch_size=args.batch_size)
            scores = {"accuracy": accuracy(y, p), "loss": NLLLoss().forward(
                np.log(np.maximum(p, np.finfo(p.dtype).tiny)), y)}
        else:
            scores = model.evaluate(x, y, loss=SoftmaxCrossEntropy(), metrics=["accuracy"],
                                    batch_size=args.batch_size)
    say(f"{args.model}: {args.split} accuracy {scores['accuracy']:.2%} "
          f"(loss {scores['loss']:.4f}) on {len(x)} samples of {name}")
    return 0


# -- the parser -----------------------------------------------------------------------------
def _train_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train an MLP classifier and save it",
                       description="Train a ReLU MLP with softmax cross-entropy, print its test "
                                   "accuracy and save it as one .npz file. Its hidden layers "
                                   "start He-uniform, the output layer Glorot-uniform (no flag "
                                   "changes that; for another init, build the model in Python: "
                                   "bp.Dense(..., init=...)).")
    data_flag(p)
    p.add_argument("--hidden", type=layer_sizes, default=DEFAULTS["hidden"], metavar="SIZES",
                   help="hidden layer sizes, comma-separated (default: 256,128; 'none' for "
                        "softmax regression); at most 2**31 parameters in all")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam",
                   help="optimizer (default: adam; sgd uses momentum 0.9)")
    p.add_argument("--lr", type=number(float, 0), default=None,
                   help="initial learning rate, decayed to 0 by a cosine schedule (default: "
                        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    p.add_argument("--epochs", type=number(int, 1), default=DEFAULTS["epochs"],
                   help=f"passes over the training data (default: {DEFAULTS['epochs']})")
    p.add_argument("--batch-size", type=number(int, 1), default=DEFAULTS["batch_size"],
                   help=f"samples per step (default: {DEFAULTS['batch_size']})")
    p.add_argument("--label-smoothing", type=number(float, 0, 1), default=DEFAULTS[
                   "label_smoothing"], help="label smoothing of the training loss, in [0, 1) "
                                            f"(default: {DEFAULTS['label_smoothing']})")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="train on features scaled to zero mean and unit variance (the "
                        "training set's statistics, folded into the first layer, so the saved "
                        "model takes raw features); default: on for an .npz, whose scale is "
                        "unknown, off for digits and IDX images (already in [0, 1])")
    p.add_argument("--seed", type=number(int, 0), default=0,
                   help="seed of the initial weights and the batch order (default: 0)")
    p.add_argument("--output", default="backprop-model.npz", metavar="PATH",
                   help="where to save the model (default: backprop-model.npz)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    threads_flag(p)
    p.set_defaults(func=train)


def _evaluate_parser(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="score a saved model (loss and accuracy)",
                       description="Load a model saved by 'train' (or bp.save) and print its "
                                   "cross-entropy loss and accuracy.")
    p.add_argument("model", metavar="MODEL", help="the saved model (.npz)")
    data_flag(p)
    p.set_defaults(data=None)  # digits, but an error can then say --data was not given
    p.add_argument("--split", choices=["test", "train"], default="test",
                   help="which part of the data to score (default: test)")
    p.add_argument("--batch-size", type=number(int, 1), default=256,
                   help="samples per forward pass (default: 256)")
    threads_flag(p)
    p.set_defaults(func=evaluate)


def make_parser() -> argparse.ArgumentParser:
    script = Path(sys.argv[0]).name == "backprop"  # the console script, not python -m
    prog = "backprop" if script else "python -m backprop"
    parser = argparse.ArgumentParser(
        prog=prog,
        description="backprop: NumPy neural networks with explicit, hand-derived backward "
                    "passes. Train a classifier or score a saved one.",
        epilog=f"examples:\n  {prog} train\n"
               f"  {prog} train --data ~/mnist --hidden 512,256 --epochs 10\n"
               f"  {prog} evaluate backprop-model.npz\n\n"
               f"'{prog} COMMAND --help' lists each command's flags.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub)
    _evaluate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse exits 2 on bad flags)."""
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:  # before fit (which handles its own), or in evaluate
        print(f"backprop {args.command}: interrupted"
              + (", nothing was saved" if args.command == "train" else ""), file=sys.stderr)
        return 130
    except (OSError, ValueError, TypeError, ImportError, RuntimeError, MemoryError) as err:
        text = (f"out of memory ({err})" if isinstance(err, MemoryError)
                else err.strerror if isinstance(err, OSError) and err.strerror  # no [Errno 2]
                and err.filename is None else err)
        print(f"backprop {args.command}: error: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
