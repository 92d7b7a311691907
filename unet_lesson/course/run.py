"""A training run's folder: its layout, its integrity, and everything written into it.

This module is the one place that writes a run folder. A run folder holds::

    run.json              what the run is: the data it trains on (and which release of the
                          DSB set, with how many of its images), the package version
    config.json           its TrainConfig (the config a resume must match)
    splits.csv            image -> train / val / test (the run's own copy)
    history.csv           one row per epoch (loss, learning rate, validation scores, seconds)
    last.pt               the latest epoch: a resume continues from here
    best.pt               the epoch with the best validation score (above chance)
    postprocess.json      the post-processing chosen on validation (+ postprocess_grid.csv)
    metrics.json          held-out scores (+ test_scores.csv), curves.png, comparison.png
    evaluate_<split>.csv  submission.csv    written by later commands
    .lock                 held by the one process that trains it (:mod:`.lock`)

**The record is always true**: every file describes the same run.

* :meth:`Run.create` refuses a folder that holds another run (or anything else) unless asked to
  ``overwrite``, which removes the old run as one step (renamed aside, then deleted); it
  checks the split and the tile size before writing anything.
* :meth:`Run.resume` refuses a configuration that differs from the saved one (model *or*
  optimisation; ``num_epochs`` may grow) naming each difference, and writes nothing then.
* Every file goes through :func:`unet_lesson.files.atomic_write`; opening a run removes the
  temporary files an interrupted write left, and training removes the results (metrics,
  figures, post-processing, submissions) of an older state of the network.
* ``best.pt`` is written only for an epoch whose validation score beats chance (predicting no
  nucleus); a run without one says so (and how to train further) instead of scoring it.

Notebooks 10 and 11 use it; the commands ``train``, ``evaluate``, ``predict``, ``submit``
are thin layers over it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from .. import __version__, env, files, plotting
from ..checkpoint import CheckpointError, epochs_in, load_checkpoint, load_model, save_checkpoint
from ..config import RUNTIME_FIELDS, TrainConfig, apply_overrides, differences
from ..data import load_splits
from ..evaluate import PostProcess, PostProcessByModality, postprocess_from_dict, score_held_out
from ..predict import predict_samples
from ..train import OneProcess, fit
from . import record
from .lock import RunLock, check_free, holder
from .preflight import check_tiles_fit, make_split
from .record import FORMAT, RunError, holds_run
from .release import identify_release

RESULTS = ("postprocess.json", "postprocess_grid.csv", "metrics.json", "test_scores.csv",
           "val_scores.csv", "curves.png", "comparison.png", "submission.csv")
SPLITS = ("train", "val", "test", "val_seen")


@dataclass
class Run:
    """A run folder: what it trains (``config``), on which data (``data_root``), where.

    Used in notebooks 10, 11 and 12.
    """

    folder: Path
    config: TrainConfig
    data_root: Path

    # ----------------------------------------------------------------------------------------
    # Making, opening and resuming
    # ----------------------------------------------------------------------------------------

    @classmethod
    def create(cls, folder: str | Path, config: TrainConfig, data_root: str | Path, samples,
               *, overwrite: bool = False, splits: pd.DataFrame | None = None) -> Run:
        """A new run of ``config`` on ``data_root`` (whose samples are ``samples``) in ``folder``.

        Refuses a folder holding another run unless ``overwrite`` (the old run is then removed
        as one step), and a folder holding anything else. The split is made
        (:func:`~unet_lesson.data.training_split` with the config's ``split``) and checked
        before anything is written; ``splits``: that split, already made for these samples
        and this config (several runs on one data set, as in an ablation, share it).
        """
        folder, data_root = Path(folder), Path(data_root).resolve()  # run.json: absolute
        check_free(folder)  # another process trains here: touch nothing
        files.remove_stale_temporaries(folder)
        for old in folder.parent.glob(f".{folder.name}.replaced-*"):  # an interrupted removal
            shutil.rmtree(old, ignore_errors=True)
        if holds_run(folder) and not overwrite:
            raise RunError(
                f"{folder} already holds a run ({record.describe(folder)}): continue it with "
                f"--resume (resume=True), replace it with --overwrite (overwrite=True), or "
                f"choose another folder")
        if folder.is_dir() and not holds_run(folder) and record.listing(folder):
            raise RunError(f"{folder} holds files that are not a run ({record.listing(folder)}); "
                           f"choose an empty or new folder")
        try:
            if splits is None:
                splits = make_split(config, samples)  # with what to type when it fails
            elif set(splits["image_id"]) != {s.image_id for s in samples}:
                raise ValueError("the splits given do not list the samples' images")
            check_tiles_fit(config, samples, data_root)
        except ValueError as err:
            raise RunError(f"cannot start a run on {data_root}: {err}") from None
        if holds_run(folder):
            record.remove_folder(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files.write_json(folder / "run.json", {"format": FORMAT, "data_root": str(data_root),
                                               "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                                               "unet_lesson": __version__,
                                               "data_release": identify_release(data_root)})
        files.write_csv(folder / "splits.csv", splits)
        config.save(folder / "config.json")
        return cls(folder, config, data_root)

    @classmethod
    def open(cls, folder: str | Path, sweep: bool = True) -> Run:
        """An existing run, to train further, evaluate or predict with.

        ``sweep``: remove the temporary files an interrupted write left (not in the other
        processes of a ``torchrun`` job: rank 0 may be writing)."""
        folder = Path(folder)
        if not (folder / "run.json").is_file() or not (folder / "config.json").is_file():
            what = "a run of an older unet-lesson (no run.json)" if holds_run(folder) else \
                "no run"
            raise RunError(f"{folder} holds {what}: train one there with `python -m "
                           f"unet_lesson train --out {folder}` (add --overwrite to replace an "
                           f"old one)")
        info, config = record.read_record(folder)
        if sweep and holder(folder) is None:  # never while another process writes there
            files.remove_stale_temporaries(folder)
        return cls(folder, config, Path(info["data_root"]))

    @classmethod
    def resume(cls, folder: str | Path, config: TrainConfig | None = None,
               overrides: list[str] | None = None, data_root: str | Path | None = None,
               sweep: bool = True) -> Run:
        """The run in ``folder``, to continue training it exactly.

        ``config`` (default: the saved one) with ``overrides`` applied must equal the saved
        configuration (``num_workers`` aside) but for a larger ``num_epochs``, which trains
        further (saved in ``config.json``; the learning-rate schedule stretches to the new
        end). ``data_root``, if given, must be the run's data. Any other difference, or another
        process training there, is refused with each named, and nothing is written.
        """
        if sweep:  # (not in the other processes of a torchrun job: rank 0 holds the lock)
            check_free(folder)  # another process trains there: refuse, touching nothing
        run = cls.open(folder, sweep)
        wanted = apply_overrides(config or run.config, list(overrides or []))
        changed = differences(run.config, wanted, (*RUNTIME_FIELDS, "num_epochs"))
        if wanted.num_epochs < run.config.num_epochs:
            changed.append(f"num_epochs: {run.config.num_epochs} -> {wanted.num_epochs} (a "
                           f"resume may raise it, not lower it)")
        if changed:
            raise RunError(
                f"{run.folder} was trained with another configuration; a resumed run must "
                f"continue the same one, so nothing was changed. Differences (saved -> "
                f"requested): {'; '.join(changed)}. Resume without them, or start a new run "
                f"in another folder (or with --overwrite)")
        if data_root is not None and not record.same_folder(data_root, run.data_root):
            raise RunError(f"{run.folder} trains on {run.data_root}, not {data_root}; resume "
                           f"it on its own data, or start a new run")
        if sweep and wanted.num_epochs > run.config.num_epochs:  # the record stays true
            print(f"{run.folder}: num_epochs {run.config.num_epochs} -> {wanted.num_epochs}; "
                  f"the learning-rate schedule now ends at epoch {wanted.num_epochs}")
            wanted.save(run.path("config.json"))
        run.config = wanted  # equal but for run-time settings such as num_workers
        return run

    @classmethod
    def trained(cls, folder: str | Path, config: TrainConfig, data_root: str | Path, samples,
                device: torch.device | None = None, splits: pd.DataFrame | None = None,
                quiet: bool = False) -> Run:
        """A finished run of exactly ``config`` on ``data_root`` in ``folder``: reused if it is
        there, continued if it was interrupted, else trained from the start (replacing a run
        of another configuration, data or split, with a message). Notebook 11 uses notebook
        10's run this way, without training it again; experiments that share one split
        (notebooks 11 and 12) pass it as ``splits``, as to :meth:`create`. ``quiet``: one
        line per run, as :meth:`train`."""
        folder = Path(folder)
        try:
            run = cls.open(folder)
            same = not differences(run.config, config) and record.same_folder(run.data_root,
                                                                               data_root)
            if same and splits is not None:
                saved = load_splits(run.path("splits.csv"))
                same = record.split_key(saved) == record.split_key(splits)
        except (RunError, ValueError, TypeError, OSError):
            run, same = None, False
        if run is None or not same:
            if holds_run(folder):
                print(f"{folder.name} holds a run of another configuration, data or split: "
                      f"training anew")
            run = cls.create(folder, config, data_root, samples, overwrite=True, splits=splits)
        if not run.finished():
            run.train(samples, device, quiet=quiet)
        return run

    # ----------------------------------------------------------------------------------------
    # The split and training
    # ----------------------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        return self.folder / name

    def split(self, samples) -> dict[str, list]:
        """``{"train": [...], "val": [...], "test": [...], "val_seen": [...]}``: ``samples`` by
        the run's split (``val_seen`` is empty for a random split)."""
        splits = load_splits(self.path("splits.csv"))
        which = dict(zip(splits["image_id"], splits["split"], strict=True))
        have = {s.image_id for s in samples}
        if have != set(which):
            raise RunError(
                f"the data changed since this run was made: {self.path('splits.csv')} lists "
                f"{len(which)} images, the data has {len(have)} ({len(have - set(which))} new, "
                f"{len(set(which) - have)} gone); train a new run on it")
        return {name: [s for s in samples if which[s.image_id] == name] for name in SPLITS}

    def epochs_done(self) -> int:
        """Epochs in ``last.pt`` (0 before the first one ended)."""
        if not self.path("last.pt").exists():
            return 0
        return epochs_in(self.path("last.pt"))

    def finished(self) -> bool:
        return self.epochs_done() >= self.config.num_epochs

    def train(self, samples, device: torch.device | None = None, *,
              until_epoch: int | None = None, time_limit_s: float | None = None,
              watch=None, processes=None, quiet: bool = False) -> pd.DataFrame:
        """Train (or continue training, from ``last.pt``) to ``config.num_epochs``.

        The results of an older state of the network (metrics, figures, post-processing,
        submissions) are removed first. ``watch(row, state)``: called after each epoch is
        saved, with its history row and checkpoint state (notebook 10 predicts one image
        with each epoch's weights). ``quiet``: one line when training ends instead of one
        per epoch. Returns the history of the whole run.
        """
        parts = self.split(samples)
        state = None
        if self.path("last.pt").exists():
            state = load_checkpoint(self.path("last.pt"),
                                    expected_model_config=asdict(self.config.model))
        processes = processes or OneProcess()
        with RunLock(self.folder) if processes.is_main else contextlib.nullcontext():
            if processes.is_main:  # under torchrun the others only read
                if state is not None:  # repairs a history a crash left one epoch behind
                    files.write_csv(self.path("history.csv"), pd.DataFrame(state["history"]))
                else:  # a run that never finished an epoch starts from the beginning
                    for name in ("history.csv", "best.pt"):
                        self.path(name).unlink(missing_ok=True)
                self.clear_results()

            def on_epoch(row: dict, state: dict, is_best: bool) -> None:
                self._save_epoch(row, state, is_best, quiet)
                if watch is not None:
                    watch(row, state)

            history = fit(self.config, parts["train"], parts["val"], device=device,
                          resume_from=state, on_epoch=on_epoch, until_epoch=until_epoch,
                          time_limit_s=time_limit_s, processes=processes)
        if quiet and processes.is_main and len(history):
            best = history.loc[history["val_dsb"].idxmax()] if history["val_dsb"].notna().any() \
                else None
            print(f"{self.folder.name}: {len(history)} epochs, "
                  f"{history['seconds'].sum() / 60:.1f} min"
                  + (f"; best validation DSB {best['val_dsb']:.3f} (epoch {int(best['epoch'])})"
                     if best is not None else ""), flush=True)
        return history

    def _save_epoch(self, row: dict, state: dict, is_best: bool, quiet: bool = False) -> None:
        state["data_root"] = str(self.data_root)
        save_checkpoint(self.path("last.pt"), **state)
        if is_best:
            save_checkpoint(self.path("best.pt"), **state)
        files.write_csv(self.path("history.csv"), pd.DataFrame(state["history"]))
        scores = "" if row["val_dsb"] is None else (f", validation Dice {row['val_dice']:.3f}, "
                                                    f"DSB {row['val_dsb']:.3f}")
        if quiet:
            return
        print(f"epoch {row['epoch']}/{self.config.num_epochs}: loss {row['train_loss']:.4f}"
              f"{scores} ({row['seconds']:.0f} s); saved last.pt{' and best.pt' * is_best}",
              flush=True)

    def clear_results(self) -> None:
        """Remove what was computed from an older state of the network."""
        for name in RESULTS:
            self.path(name).unlink(missing_ok=True)
        for pattern in ("evaluate_*.csv", "scores_*.csv"):
            for path in self.folder.glob(pattern):
                path.unlink()

    # ----------------------------------------------------------------------------------------
    # Reading the record
    # ----------------------------------------------------------------------------------------

    def history(self) -> pd.DataFrame:
        path = self.path("history.csv")
        return pd.read_csv(path) if path.is_file() else pd.DataFrame()

    def load_model(self, device: torch.device | None = None, checkpoint: str = "best.pt"):
        """The network of ``best.pt`` (or another checkpoint of the run, such as ``last.pt``),
        in eval mode, on ``device``."""
        path = self.path(checkpoint)
        if checkpoint == "best.pt" and not path.exists() and self.path("last.pt").exists():
            raise record.no_best(self.folder, self.data_root, self.config)
        try:
            net, _, _ = load_model(path, device)
        except CheckpointError as err:
            raise RunError(str(err)) from None
        return net

    def fingerprint(self, checkpoint: str = "best.pt", *depends_on) -> str:
        """A key of the results computed from one of this run's networks: the checkpoint
        file (its size and modification time, to the nanosecond) and whatever else they
        ``depends_on`` (the images scored, the decoding...). A cached result whose key
        differs was computed from another network or other inputs."""
        stat = self.path(checkpoint).stat()
        text = repr((checkpoint, stat.st_size, stat.st_mtime_ns, depends_on))
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def cached_table(self, name: str, key: str, compute) -> pd.DataFrame:
        """The table ``name`` of this run folder if it was computed for ``key``
        (:meth:`fingerprint`), else ``compute()``, written there with its key. Training the
        network further removes it, as every result."""
        path = self.path(name)
        if path.is_file():
            table = pd.read_csv(path, dtype={"image_id": str})
            if len(table) and (table["fingerprint"] == key).all():
                return table.drop(columns="fingerprint")
        table = compute()
        files.write_csv(path, table.assign(fingerprint=key))
        return table

    def best_epoch(self) -> int:
        return epochs_in(self.path("best.pt"))

    def postprocess(self) -> PostProcess | PostProcessByModality:
        """The post-processing chosen on validation (one setting, or one per modality), or the
        default before it was chosen."""
        path = self.path("postprocess.json")
        if path.is_file():
            return postprocess_from_dict(json.loads(path.read_text()))
        return PostProcess.for_target(self.config.target)

    # ----------------------------------------------------------------------------------------
    # Results
    # ----------------------------------------------------------------------------------------

    def finish(self, samples, device: torch.device | None = None, tta: bool = False) -> dict:
        """Score the best network on the held-out splits
        (:func:`~unet_lesson.evaluate.score_held_out`: post-processing chosen on validation,
        the test split scored once) and write ``postprocess.json``, the score table of the
        reported split, ``metrics.json`` and the figures; returns the metrics."""
        device = device or env.pick_device()
        held = score_held_out(self.load_model(device), self.split(samples), self.config,
                              device, tta)
        files.write_csv(self.path("postprocess_grid.csv"), held.grid)
        files.write_json(self.path("postprocess.json"), held.post.to_dict())
        reported = held.scores[held.reported]
        files.write_csv(self.path(f"{held.reported}_scores.csv"), reported)
        history = self.history()
        metrics = {**held.metrics(), "fingerprint": self.fingerprint("best.pt", tta),
                   "split": self.config.split,
                   "postprocess": held.post.to_dict(), "best_epoch": self.best_epoch(),
                   "epochs_trained": len(history),
                   "train_minutes": round(float(history["seconds"].sum()) / 60, 2),
                   "evaluate_seconds": held.seconds, "device": env.device_name(device), "tta": tta,
                   "config": self.config.to_dict()}
        files.write_json(self.path("metrics.json"), metrics)
        self.save_figure("curves.png", plotting.plot_history(history))
        by_id = {s.image_id: s for s in samples}
        shown = [by_id[i] for i in reported["image_id"]]
        self.save_figure("comparison.png", plotting.comparison_figure(
            shown, held.probabilities, held.post, plotting.pick_examples(reported),
            f"{held.reported} images: DSB score {metrics[held.reported]['dsb']:.3f}"))
        return metrics

    def predict(self, samples, device: torch.device | None = None, tta: bool = False
                ) -> list:
        """The best network's probabilities for each sample (the run's preprocessing, tiles
        and precision)."""
        device = device or env.pick_device()
        return predict_samples(self.load_model(device), samples, self.config, device, tta)

    def save_figure(self, name: str, fig) -> Path:
        with files.atomic_write(self.path(name), "wb") as handle:
            fig.savefig(handle, format=Path(name).suffix[1:], bbox_inches="tight")
        plt.close(fig)
        return self.path(name)

