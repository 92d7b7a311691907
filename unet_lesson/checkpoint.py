"""Checkpoints that are whole or refused: written atomically, loaded safely, checked for config.

A checkpoint holds everything needed to continue a run exactly: the model, optimiser, learning-
rate scheduler and gradient scaler states, the epoch, the random-number generator states of
Python, NumPy and PyTorch, the training history and the model's configuration.

* Written through :func:`unet_lesson.files.atomic_write` (a temporary file in the same folder,
  flushed, then renamed over the target), so a crash mid-write never leaves a half checkpoint
  under the real name.
* Loaded with ``torch.load(..., weights_only=True)``: no arbitrary code runs from a file. All
  states are therefore stored as tensors, numbers, strings, lists and dicts; a file holding
  anything else is refused as not ours, never with advice to load it unsafely.
* A file that is truncated, corrupt, of another format, or of another model configuration gives
  a clear :class:`CheckpointError` instead of a deep traceback.

A run folder (:mod:`unet_lesson.course.run`) decides which checkpoints exist and when they are
written; this module only knows the file format. Notebook 10 looks inside a checkpoint.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import env
from .config import from_dict
from .files import atomic_write
from .networks import build_network

FORMAT = "unet-lesson-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (corrupt, incomplete, other format or other configuration).

    Not built in a notebook: :func:`load_checkpoint` and the run folder raise it.
    """


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and PyTorch's global generators, as safe-to-load values.

    Not built in a notebook: training saves it in every checkpoint.
    """
    # the legacy global generator, which libraries still draw from
    np_state = np.random.get_state()  # noqa: NPY002  ('MT19937', uint32[624], pos, gauss...)
    state = {
        "python": _to_safe(random.getstate()),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state`.

    Not built in a notebook: training restores it when a run resumes.
    """
    random.setstate(_from_safe(state["python"]))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_safe(value):
    """Tuples -> lists recursively (weights_only loading accepts lists, ints, floats, None)."""
    if isinstance(value, tuple | list):
        return [_to_safe(v) for v in value]
    return value


def _from_safe(value):
    if isinstance(value, list):
        return tuple(_from_safe(v) for v in value)
    return value


def checkpoint_state(net, optimizer, scheduler, scaler, cfg, epoch: int, history: list,
                     reference: float | None, rngs: list) -> dict[str, Any]:
    """Everything needed to continue a run exactly, as :func:`save_checkpoint` stores it:
    the states of the network, optimiser, scheduler and gradient scaler, the epoch (0-based),
    the configurations, the history, the first loss (``reference``) and every process's
    random-number state (``rngs``; one without ``torchrun``).

    Not built in a notebook: :func:`~unet_lesson.train.fit` hands it to its ``on_epoch``.
    """
    return {"model": net.state_dict(), "model_config": asdict(cfg.model),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "epoch": epoch, "train_config": cfg.to_dict(),
            "history": list(history), "rng": rngs[0], "rng_per_rank": rngs,
            "reference_loss": reference}


def epochs_in(path: str | Path) -> int:
    """Epochs a checkpoint has trained (its 0-based ``epoch`` + 1), read without loading its
    tensors (they are memory-mapped, never read). Raises :class:`CheckpointError` like
    :func:`load_checkpoint`.

    Not built in a notebook: a run folder asks how far it got.
    """
    return int(load_checkpoint(path, mmap=True)["epoch"]) + 1


def save_checkpoint(path: str | Path, **state: Any) -> Path:
    """Write ``state`` (plus the format marker) atomically to ``path``; returns the path.

    Not built in a notebook: the run folder (:class:`~unet_lesson.course.run.Run`) writes with it.
    """
    with atomic_write(path, "wb") as handle:
        torch.save({"format": FORMAT, **state}, handle)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    expected_model_config: dict | None = None, mmap: bool = False
                    ) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, refusing anything else.

    ``expected_model_config``: if given, the checkpoint's ``model_config`` must equal it; the
    error lists the differing fields. ``mmap``: map the tensors instead of reading them (for
    a look at the small entries, e.g. the epoch).

    Used in notebook 10.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train first, or check the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:  # objects weights_only refuses: it may run code
        raise CheckpointError(
            f"{path} is not a checkpoint this course wrote: it holds Python objects that "
            f"could run code when loaded, so it must not be loaded. Delete it (or keep it "
            f"away from this course) and train again, or resume from another checkpoint."
        ) from err
    except Exception as err:  # truncated zip, corrupt file...
        raise CheckpointError(
            f"{path} is not a readable checkpoint (corrupt or incomplete: {type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). Delete it and train again, or resume from "
            f"another checkpoint."
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a unet-lesson checkpoint (expected format {FORMAT})")
    if expected_model_config is not None:
        saved = state.get("model_config", {})
        diff = {k: (saved.get(k), v) for k, v in expected_model_config.items() if saved.get(k) != v}
        if diff:
            details = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}"
                                for k, (a, b) in diff.items())
            raise CheckpointError(
                f"{path} was trained with another model configuration ({details}). Use the "
                f"matching configuration, or start a new run in another folder."
            )
    return state


def load_model(path: str | Path, device: torch.device | None = None):
    """``(net, train_config, checkpoint)`` from a checkpoint, the network in eval mode.

    The network is rebuilt from the checkpoint's own configuration, so it always matches the
    weights.

    Not built in a notebook: :meth:`Run.load_model <unet_lesson.course.run.Run.load_model>`
    calls it.
    """
    device = device or env.pick_device()
    state = load_checkpoint(path, map_location=device)
    cfg = from_dict(state["train_config"])
    # the weights come from the checkpoint: no fetching of pre-trained ones first
    net = build_network(replace(cfg.model, pretrained=False)).to(device)
    net.load_state_dict(state["model"])
    return net.eval(), cfg, state
