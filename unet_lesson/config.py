"""Training configurations: one dataclass, a few named presets, JSON files and ``key=value``.

Two presets are the course's two ways to train, one config apart:

* ``paper``: as in Ronneberger et al. (2015): valid padding, no batch norm, drop-out, the
  weighted cross-entropy with the border weight map (section 3), elastic deformation
  (section 3.1), SGD with momentum 0.99 and a batch of one large tile.
* ``practical``: what works best for the Data Science Bowl with little tuning: same padding,
  batch norm, a three-class target (background, interior, border) decoded by a seeded watershed,
  cross-entropy + soft Dice, Adam with a cosine schedule.

``demo`` is ``practical`` shrunk to train in minutes on a laptop CPU.
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .model import PADDINGS, UP_MODES, UNetConfig

TARGETS = ("binary", "three_class")
LOSSES = ("weighted_ce", "ce", "ce_dice")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved with every checkpoint)."""

    # the model: the arguments of UNet
    in_channels: int = 3  # DSB images are RGB
    base_channels: int = 32  # 64 in the paper
    depth: int = 4
    padding: str = "same"  # "valid" as in the paper
    batch_norm: bool = True
    up_mode: str = "transpose"
    dropout: float = 0.0
    # what the network predicts, and the loss
    target: str = "three_class"  # "binary": nucleus or not; "three_class": + nucleus border
    loss: str = "ce_dice"  # "weighted_ce" (paper's weight map), "ce", or "ce_dice"
    w0: float = 10.0  # weight map: border weight (paper: 10)
    sigma: float = 5.0  # weight map: border width in pixels (paper: 5)
    dice_weight: float = 1.0  # ce_dice: loss = CE + dice_weight * soft Dice
    # data
    tile_size: int = 256  # training: input tile ("same") or output tile ("valid", 388 in the paper)
    predict_tile: int = 512  # prediction: the same, for overlap-tile prediction of whole images
    batch_size: int = 8
    tiles_per_epoch: int = 800  # random training tiles drawn per epoch
    elastic: bool = True  # the paper's elastic deformation (flips, rotations always on)
    num_workers: int = 2  # DataLoader worker processes
    val_fraction: float = 0.15  # for model selection and post-processing (stratified split)
    test_fraction: float = 0.15  # held out until the end: the reported score
    # optimisation
    optimizer: str = "adam"  # or "sgd" (the paper's, with momentum 0.99)
    lr: float = 1e-3
    momentum: float = 0.99  # SGD only
    weight_decay: float = 1e-5
    schedule: str = "cosine"  # cosine decay after a linear warm-up, or "constant"
    warmup_steps: int = 100
    grad_clip: float = 1.0  # largest gradient norm; 0 turns clipping off
    num_epochs: int = 40
    # speed
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16)
    amp_cpu: bool = False  # bf16 on the CPU: fast only where the CPU has native bf16
    channels_last: bool = True
    compile: bool = False  # torch.compile the network
    # validation
    val_every: int = 1  # validate every n epochs (and after the last)
    val_max_images: int = 0  # score at most this many validation images per epoch (0: all)
    seed: int = 0

    def __post_init__(self):
        for name, value, choices in [("padding", self.padding, PADDINGS),
                                     ("up_mode", self.up_mode, UP_MODES),
                                     ("target", self.target, TARGETS),
                                     ("loss", self.loss, LOSSES),
                                     ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("schedule", self.schedule, SCHEDULES)]:
            if value not in choices:
                raise ValueError(f"config {name} must be one of {choices}, got {value!r}")
        if self.loss == "weighted_ce" and self.target != "binary":
            raise ValueError("loss 'weighted_ce' (the paper's weight map) needs target 'binary'")
        for name in ("batch_size", "tile_size", "predict_tile", "num_epochs", "tiles_per_epoch",
                     "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"config {name} must be at least 1, got {getattr(self, name)}")

    @property
    def num_classes(self) -> int:
        return 3 if self.target == "three_class" else 2

    def model_config(self) -> UNetConfig:
        """The :class:`~unet_lesson.model.UNetConfig` of the network this run trains."""
        return UNetConfig(self.in_channels, self.num_classes, self.base_channels, self.depth,
                          self.padding, self.batch_norm, self.up_mode, self.dropout)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


PRESETS: dict[str, dict] = {
    "paper": dict(base_channels=64, padding="valid", batch_norm=False, dropout=0.5,
                  target="binary", loss="weighted_ce", tile_size=388, predict_tile=388,
                  batch_size=1,
                  tiles_per_epoch=400, optimizer="sgd", lr=0.01, momentum=0.99,
                  weight_decay=0.0, schedule="constant", grad_clip=1.0, num_epochs=60),
    "practical": dict(),  # the dataclass defaults
    # practical for the real DSB on a 2-core CPU, about 40 minutes
    "cpu": dict(base_channels=16, tile_size=256, batch_size=8, tiles_per_epoch=640,
                num_epochs=30, val_max_images=40, num_workers=0),
    # practical, shrunk to train in a few minutes on a laptop CPU (python -m unet_lesson demo)
    "demo": dict(base_channels=16, tile_size=128, batch_size=8, tiles_per_epoch=320,
                 num_epochs=12, warmup_steps=40, val_max_images=24, num_workers=0),
}


def course_config(kind: str = "practical", device=None) -> TrainConfig:
    """The configuration the demo and notebooks 10-11 train, sized for this machine's mode.

    ``kind``: ``"practical"`` or ``"paper"``. Fast mode (CI): a tiny network for one short
    epoch. CPU: a width-16 network for a few minutes. GPU: the full configurations.
    """
    from . import env

    if kind not in ("practical", "paper"):
        raise ValueError(f"kind must be 'practical' or 'paper', got {kind!r}")
    fast = dict(base_channels=8, tile_size=64, batch_size=4, tiles_per_epoch=16, num_epochs=1,
                warmup_steps=2, val_max_images=4, num_workers=0)
    cpu = PRESETS["demo"] if kind == "practical" else dict(
        base_channels=16, tile_size=100, batch_size=4, tiles_per_epoch=160, num_epochs=12,
        val_max_images=24, num_workers=0, lr=0.01)
    gpu = dict(num_epochs=30, tiles_per_epoch=2000, num_workers=4) if kind == "practical" \
        else dict(num_epochs=30, num_workers=4)
    sized = env.by_mode(fast=fast, cpu=cpu, gpu=gpu, device=device)
    return preset(kind, **sized)


def preset(name: str, **overrides) -> TrainConfig:
    """A named configuration, optionally with some fields changed."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return TrainConfig(**{**PRESETS[name], **overrides})


def from_dict(values: dict) -> TrainConfig:
    """A config from a dict (e.g. a checkpoint's), refusing unknown keys by name."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
    return TrainConfig(**values)


def load_config(name_or_path: str, overrides: list[str] | None = None) -> TrainConfig:
    """A preset name or a JSON file, then ``key=value`` overrides (types from the dataclass)."""
    path = Path(name_or_path)
    if name_or_path in PRESETS:
        config = preset(name_or_path)
    elif path.suffix == ".json":
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        try:
            config = from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {path} is not valid JSON: {err}") from err
    else:
        raise ValueError(f"config {name_or_path!r} is neither a preset {sorted(PRESETS)} nor a "
                         f".json file")
    return apply_overrides(config, overrides or [])


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``["lr=0.01", "padding=valid", "elastic=false"]`` with the fields' own types."""
    hints = typing.get_type_hints(TrainConfig)
    changes = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in hints:
            raise ValueError(f"cannot apply {item!r}: expected key=value with key one of "
                             f"{sorted(hints)}")
        changes[key] = _parse(hints[key], raw.strip(), key)
    return replace(config, **changes)


def _parse(kind, raw: str, key: str):
    if kind is bool:
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"{key} takes true or false, got {raw!r}")
    try:
        return kind(raw)
    except ValueError as err:
        raise ValueError(f"{key} takes a {kind.__name__}, got {raw!r}") from err
