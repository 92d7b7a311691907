r"""The paper's two central claims measured on the course's data: weight map, elastic deformation.

Ronneberger et al. (2015) make two claims a student can test:

* **The weight map** (section 3): "We pre-compute the weight map for each ground truth
  segmentation ... to force the network to learn the small separation borders that we
  introduce between touching cells." Measured as: the paper's loss with the border term
  (``w0=10``) against the same loss without it (``w0=0``: only the class balance), everything
  else equal; what changes is how many predicted nuclei swallow several true ones (**merges**,
  :func:`unet_lesson.metrics.object_errors`) and the DSB score.
* **Elastic deformation** (section 3.1): "Especially random elastic deformations of the
  training samples seem to be the key concept to train a segmentation network with very few
  annotated images." Measured as: ``elastic=True`` against ``elastic=False`` (flips, rotations
  and grey values stay on in both), with few training images (e.g. 8) and more (e.g. 32).

**The design**, one rule for every arm:

* one split: the course's group split of the data set (:func:`~unet_lesson.data.training_split`,
  seed 0); training images come from its training part, in one seeded order, so the first 8
  are among the first 32 (:func:`claim_split`); every run is scored on the **same** validation
  images (held-out acquisition groups);
* one budget: the same configuration (:func:`claims_config`), the same number of optimiser
  steps; only ``w0``, ``elastic`` or the number of training images change (:class:`Arm`);
* one network per arm and seed, as a :class:`~unet_lesson.course.run.Run` in
  ``out_dir/<arm>-seed<k>``: a finished run is reused, never trained again;
* the network after its last step (``last.pt``, nothing chosen on validation), scored with
  fixed post-processing (no tuning, so nothing is fitted to the validation images): connected
  components (nuclei are separated only where the network left a gap: the weight map's job)
  and the course's watershed (which separates blobs itself, and may hide the difference);
* the spread: each arm runs from several seeds (initial weights, tile order, augmentation).
  :func:`summarise_claim` gives mean and standard deviation over seeds and, against a
  reference arm, the difference, whether it beats twice the larger spread, and an exact
  permutation test over the seeds (:func:`unet_lesson.stats.permutation_p`).

**Size**: the paper's network and loss (valid padding, no batch norm, drop-out, two classes,
the weighted cross-entropy), width 16 on a CPU. One departure, stated: AdamW instead of SGD
with momentum 0.99, because that SGD learns nothing on the real images in the few hundred
steps a CPU gives in minutes, where AdamW does (the figures: ``docs/results.md``); the claims
are about the loss and the augmentation, not the optimiser.

Used in notebook 11 (section "The paper's claims, measured") and by
``benchmarks/paper_claims.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import env
from ..config import TrainConfig, preset
from ..evaluate import PostProcess, score_samples
from ..files import folder_key
from ..predict import predict_samples
from ..stats import permutation_p, smallest_p
from .run import Run

CLAIMS = ("weight map", "elastic deformation")
POSTS = {  # fixed post-processing: nothing is tuned on the validation images
    "components": PostProcess(method="components"),  # separation by the network alone
    "watershed": PostProcess.for_target("binary"),  # the course's two-class decoding
}
COUNTS = ("true", "matched", "missed", "merged", "split", "false positives", "merges")


def claims_config(device: torch.device | None = None, mode: str | None = None,
                  **changes) -> TrainConfig:
    """The configuration every arm starts from: the paper's (``preset("paper")``: valid
    padding, no batch norm, drop-out, two classes, the weighted cross-entropy, elastic
    deformation), sized for this machine's mode, with AdamW (see the module docstring).

    Fast (CI): width 4, a few steps. CPU: width 16, 100-pixel output tiles (284-pixel input),
    batch 2, 80 steps (minutes a run: ``docs/results.md`` has the time). GPU: the paper's
    width 64 and 388-pixel tiles, batch 4, 1000 steps.
    Validation during training scores one image (it only marks the checkpoint); the claims
    are scored afterwards (:func:`score_run`). ``mode``: another mode's size (default: this
    machine's, :func:`unet_lesson.env.mode`).

    Not built in a notebook: :func:`claims_plan` and ``benchmarks/paper_claims.py`` call it.
    """
    sized = dict(
        fast=dict(base_channels=4, tile_size=20, predict_tile=100, batch_size=2,
                  tiles_per_epoch=4, num_epochs=1, warmup_steps=1),
        cpu=dict(base_channels=16, tile_size=100, predict_tile=260, batch_size=2,
                 tiles_per_epoch=80, num_epochs=2, warmup_steps=20),
        gpu=dict(base_channels=64, tile_size=388, predict_tile=388, batch_size=4,
                 tiles_per_epoch=400, num_epochs=10, warmup_steps=100,
                 num_workers=min(4, env.cpu_count())))[mode or env.mode(device)]
    values = {**dict(optimizer="adamw", lr=1e-3, schedule="cosine", num_workers=0,
                     val_max_images=1, best_above_chance=False), **sized}
    values.update(changes)
    values.setdefault("val_every", values["num_epochs"])
    return preset("paper", **values)


def claims_plan(device: torch.device | None = None, mode: str | None = None) -> dict:
    """The optional notebook 11b's measurement of both claims, sized for the mode:
    ``base`` (:func:`claims_config`), the training-set ``sizes`` of the elastic claim, the
    ``seeds`` and ``n_val``, the validation images every run is scored on.

    Five seeds on a GPU: the exact permutation test over seeds can then reach p = 0.008
    (:func:`unet_lesson.stats.smallest_p`); with three, 0.1 at best, whatever the runs do.

    Used in notebook 11b.
    """
    mode = mode or env.mode(device)
    pick = dict(fast=0, cpu=1, gpu=2)[mode]
    return {"base": claims_config(device, mode),
            "sizes": ((4,), (8,), (8, 32))[pick],
            "seeds": ([0, 1], [0, 1, 2], [0, 1, 2, 3, 4])[pick],
            "n_val": (3, 16, 48)[pick]}


@dataclass(frozen=True)
class Arm:
    """One configuration of an experiment: which claim it belongs to, its name in tables,
    and what it changes in the base configuration (``w0``, ``elastic``) and in the data
    (``n_train`` training images).

    Not built in a notebook: :func:`paper_claim_arms` makes them.
    """

    claim: str
    name: str
    n_train: int
    w0: float = 10.0
    elastic: bool = True

    @property
    def key(self) -> str:
        """The run folder's name (without the seed): what the arm trains, not its claim, so
        an arm shared by two claims is one run."""
        return f"w0-{self.w0:g}_{'elastic' if self.elastic else 'rigid'}_n{self.n_train}"

    def config(self, base: TrainConfig, seed: int) -> TrainConfig:
        """``base`` with this arm's changes and ``seed``."""
        values = base.to_dict()
        values.update(w0=float(self.w0), elastic=self.elastic, seed=seed)
        return TrainConfig(**values)


def paper_claim_arms(sizes: tuple[int, ...] = (8, 32)) -> list[Arm]:
    """The arms of both claims. The weight map: ``w0=10`` against ``w0=0`` on the largest
    training set; elastic deformation: on against off for each size in ``sizes``. The arm
    ``w0=10, elastic, largest size`` belongs to both (one run per seed).

    Used in notebook 11b.
    """
    largest = max(sizes)
    arms = [Arm("weight map", "w0=10 (the paper)", largest),
            Arm("weight map", "w0=0 (no border term)", largest, w0=0.0)]
    for n in sorted(sizes):
        arms += [Arm("elastic deformation", f"elastic, {n} images", n),
                 Arm("elastic deformation", f"no elastic, {n} images", n, elastic=False)]
    return arms


def claim_split(splits: pd.DataFrame, n_train: int, n_val: int,
                val_ids: list[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """The split of one arm: ``n_train`` images of the training part of ``splits`` (the
    first ``n_train`` of one seeded order: smaller sets are inside larger ones) and the
    validation images (``val_ids``, or the first ``n_val`` of the validation part).

    Columns ``image_id`` and ``split`` (``train`` or ``val``), as a run's ``splits.csv``.

    Not built in a notebook: :func:`measure_claims` calls it.
    """
    train = sorted(splits.loc[splits["split"] == "train", "image_id"])
    if n_train > len(train):
        raise ValueError(f"{n_train} training images asked for, the split's training part "
                         f"has {len(train)}")
    order = np.random.default_rng(seed).permutation(len(train))
    chosen = [train[i] for i in order[:n_train]]
    if val_ids is None:
        val_ids = sorted(splits.loc[splits["split"] == "val", "image_id"])[:n_val]
    return pd.DataFrame({"image_id": chosen + list(val_ids),
                         "split": ["train"] * len(chosen) + ["val"] * len(val_ids)})


def score_run(run, val_set, device: torch.device | None = None) -> pd.DataFrame:
    """One row per validation image: the DSB score with each of :data:`POSTS` and the object
    errors (:data:`COUNTS`, at IoU 0.5) of the components decoding, plus ``merges_watershed``;
    from the run's last network (``last.pt``). Kept in the run folder (``scores_claims.csv``)
    while the network and the images are the same.

    Not built in a notebook: :func:`measure_claims` calls it.
    """
    def compute() -> pd.DataFrame:
        net = run.load_model(device or env.pick_device(), "last.pt")
        probs = predict_samples(net, val_set, run.config, device, desc="scoring")
        tables = {name: score_samples(val_set, probs, post, errors=True)
                  for name, post in POSTS.items()}
        table = tables["components"][["image_id", "modality", *COUNTS]]
        return table.assign(**{f"dsb_{name}": t["dsb"] for name, t in tables.items()},
                            merges_watershed=tables["watershed"]["merges"])

    key = run.fingerprint("last.pt", [s.image_id for s in val_set], sorted(POSTS))
    return run.cached_table("scores_claims.csv", key, compute)


def measure_claims(arms: list[Arm], seeds, base: TrainConfig, samples, data_root,
                   out_dir, splits: pd.DataFrame, n_val: int,
                   device: torch.device | None = None) -> pd.DataFrame:
    """Train (or reuse) every arm from every seed and score it on the same validation images.

    ``splits``: the data set's split (:func:`~unet_lesson.data.training_split`); ``n_val``:
    how many of its validation images to score (the first, by id). Runs go seed by seed, so
    an interrupted measurement leaves whole seeds. Returns one row per arm, seed and image:
    ``claim``, ``arm``, ``key``, ``n_train``, ``w0``, ``elastic``, ``seed``, ``train_s`` and
    the columns of :func:`score_run`.

    Used in notebook 11b.
    """
    device = device or env.pick_device()
    out_dir = Path(out_dir)
    by_id = {s.image_id: s for s in samples}
    val_ids = sorted(splits.loc[splits["split"] == "val", "image_id"])[:n_val]
    val_set = [by_id[i] for i in val_ids]
    tables, done = [], {}
    for seed in seeds:
        for arm in arms:
            folder = out_dir / f"{arm.key}-seed{seed}"
            if folder not in done:
                split = claim_split(splits, arm.n_train, n_val, val_ids)
                chosen = [by_id[i] for i in split["image_id"]]
                print(f"{arm.name}, seed {seed}: {folder.name}", flush=True)
                run = Run.trained(folder, arm.config(base, seed), data_root, chosen, device,
                                  split)
                scores = score_run(run, val_set, device)
                done[folder] = scores.assign(train_s=float(run.history()["seconds"].sum()))
            tables.append(done[folder].assign(claim=arm.claim, arm=arm.name, key=arm.key,
                                              n_train=arm.n_train, w0=arm.w0,
                                              elastic=arm.elastic, seed=seed))
    table = pd.concat(tables, ignore_index=True)
    first = ["claim", "arm", "key", "n_train", "w0", "elastic", "seed", "train_s"]
    return table[first + [c for c in table.columns if c not in first]]


def per_run(images: pd.DataFrame) -> pd.DataFrame:
    """One row per claim, arm and seed: the mean over validation images of every score and
    count (so ``merges`` is merges per image), and ``merged_share``, the share of all true
    nuclei that ended inside a merge.

    Used in notebook 11b.
    """
    keys = ["claim", "arm", "key", "n_train", "w0", "elastic", "seed"]
    numeric = [c for c in images.select_dtypes("number").columns if c not in keys]
    runs = images.groupby(keys, sort=False)[numeric].mean().reset_index()
    totals = images.groupby(keys, sort=False)[["merged", "true"]].sum().reset_index()
    runs["merged_share"] = totals["merged"] / totals["true"].clip(lower=1)
    return runs


def summarise_claim(runs: pd.DataFrame, claim: str, reference: str,
                    measures=("dsb_watershed", "dsb_components", "merges", "merged_share"),
                    factor: float = 2.0) -> pd.DataFrame:
    """One row per arm of ``claim`` and measure: mean and standard deviation over seeds, the
    difference from the ``reference`` arm of the same number of training images (the
    reference's name, with the number of images where the claim has several), whether that
    difference beats ``factor`` times the larger of the two standard deviations, and the
    exact permutation test over seeds (``p``, with ``p_min``, the smallest p those seeds
    allow).

    ``reference``: the arm to compare with, e.g. ``"w0=10 (the paper)"``, or for several
    sizes a prefix such as ``"elastic,"`` (an arm is compared with the reference arm of the
    same ``n_train``).

    Used in notebook 11b.
    """
    part = runs[runs["claim"] == claim]
    rows = []
    for (arm, n), group in part.groupby(["arm", "n_train"], sort=False):
        ref_rows = part[(part["n_train"] == n) & part["arm"].str.startswith(reference)]
        for measure in measures:
            values = group[measure].to_numpy(dtype=float)
            ref = ref_rows[measure].to_numpy(dtype=float)
            sd = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            ref_sd = float(ref.std(ddof=1)) if len(ref) > 1 else float("nan")
            is_ref = arm in set(ref_rows["arm"])
            diff = float("nan") if is_ref or not len(ref) else float(values.mean() - ref.mean())
            threshold = factor * max(sd, ref_sd)
            rows.append({
                "arm": arm, "n_train": n, "measure": measure, "seeds": len(values),
                "mean": float(values.mean()), "sd": sd, "difference": diff,
                "beyond_spread": None if is_ref or np.isnan(threshold) else
                bool(abs(diff) > threshold),
                "p": float("nan") if is_ref else permutation_p(values, ref),
                "p_min": float("nan") if is_ref else smallest_p(len(values), len(ref)),
            })
    return pd.DataFrame(rows)


def claims_folder(data_root, device: torch.device | None = None) -> Path:
    """``runs/claims_<data set>-<key of its path>_<fast|cpu|gpu>``: where the claims' runs on
    ``data_root`` live, one folder per data set and mode, so a fast CI run never replaces a
    CPU or GPU one.

    Used in notebook 11b.
    """
    root = Path(data_root).resolve()
    return env.runs_dir() / f"claims_{root.name}-{folder_key(root)}_{env.mode(device)}"
