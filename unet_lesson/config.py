"""Training configurations: one dataclass, a few named presets, JSON files and ``key=value``.

A :class:`TrainConfig` holds everything that defines a training run; its ``model`` field is
the network's :class:`~unet_lesson.networks.UNetConfig` (the one description of the network).
Values are checked where they enter, the same way for every entry (a preset, a JSON file,
``--set key=value``, a dict from a checkpoint): unknown keys and wrong types are refused by
name, and every number has a range.

The course's two ways to train, one config apart:

* ``paper``: as in Ronneberger et al. (2015): valid padding, no batch norm, drop-out, the
  weighted cross-entropy with the border weight map (section 3), elastic deformation
  (section 3.1), SGD with momentum 0.99 and a batch of one large tile. Two departures, both
  switchable: gradient clipping (``grad_clip``, the paper has none) keeps the high-momentum
  SGD from blowing up on our data; the learning rate is ours (the paper does not give one).
* ``practical``: what works best for the Data Science Bowl with little tuning: same padding,
  batch norm, a three-class target (background, interior, border) decoded by a seeded watershed,
  cross-entropy + soft Dice, AdamW (Adam with decoupled weight decay) with a linear warm-up and
  cosine decay.

``laptop`` is ``practical`` sized for the real data on a 2-core CPU (its time is measured in
``docs/results.md``); ``demo`` is ``practical`` shrunk to train in minutes.

Built in notebook 10 (section 2 compares the two presets).
"""

from __future__ import annotations

import json
import math
import numbers
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .checks import check_choice, check_range
from .data.normalise import INPUT_MODES
from .networks.config import UNetConfig

TARGETS = ("binary", "three_class")
SPLIT_KINDS = ("group", "random")
LOSSES = ("weighted_ce", "ce", "ce_dice")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
TILE_SHARES = ("image", "modality", "group")
MIN_NUCLEUS_SIZE = 4  # pixels: the smallest nucleus_size (a nucleus needs an interior)
MAX_TILE = 4096  # pixels: the largest tile_size and predict_tile (larger than any image)
# fields that change how a run is computed, not what it computes: a resume may change them
RUNTIME_FIELDS = ("num_workers",)


def _practical_model() -> UNetConfig:
    return UNetConfig(in_channels=3, num_classes=3, base_channels=32, depth=4, padding="same",
                      batch_norm=True, up_mode="transpose", dropout=0.0)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as the run's ``config.json``).

    Not built in a notebook: :func:`preset` makes one and every run saves it.
    """

    # the network (its num_classes follows the target: 3 for three_class, 2 for binary)
    model: UNetConfig = field(default_factory=_practical_model)
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
    input_mode: str = "raw"  # "raw" (x/255), "percentile" or "invert" (data/normalise.py)
    elastic: bool = True  # the paper's elastic deformation (flips, rotations always on)
    augment_on_device: bool = False  # the paper's augmentations on the batch, on the training
    # device (data/batch_augment.py): the DataLoader then only cuts windows (for a GPU)
    colour_augment: bool = False  # stain (HED), hue/saturation and grey jitter (data/colour.py)
    quality_augment: bool = False  # contrast, blur and noise (data/colour.py)
    scale_augment: float = 0.0  # zoom tiles by up to this factor or its inverse (0: off)
    # nuclei at one scale (data/scale.py): every image is rescaled so its median nucleus
    # diameter becomes this many pixels, for training and prediction (0: off, native scale)
    nucleus_size: float = 0.0
    tile_shares: str = "image"  # an epoch's tiles shared equally by "image" (each training
    # image), "modality" or "group" (acquisition group), whatever their number of images
    num_workers: int = 2  # DataLoader worker processes
    split: str = "group"  # "group": val and test hold out whole acquisition groups; "random"
    val_fraction: float = 0.15  # for model selection and post-processing
    test_fraction: float = 0.15  # held out until the end: the reported score
    seen_fraction: float = 0.1  # group split: training-group images kept out as "val_seen"
    # optimisation
    optimizer: str = "adamw"  # or "sgd" (the paper's, with momentum 0.99)
    lr: float = 1e-3
    momentum: float = 0.99  # SGD only
    weight_decay: float = 1e-5
    schedule: str = "cosine"  # cosine decay after a linear warm-up, or "constant"
    warmup_steps: int = 100  # linear warm-up (not in the paper); 0 turns it off
    grad_clip: float = 1.0  # largest gradient norm (not in the paper); 0 turns clipping off
    num_epochs: int = 40
    # speed
    amp: bool = True  # mixed precision on CUDA (bf16 where native, else fp16)
    amp_cpu: bool = True  # bf16 on the CPU where the CPU computes it natively, else fp32
    # (precision.cpu_has_native_bf16); false: fp32 on every CPU
    channels_last: bool = True
    compile: bool = False  # torch.compile the network
    # validation
    val_every: int = 1  # validate every n epochs (and after the last)
    val_max_images: int = 0  # score at most this many validation images per epoch (0: all)
    # post-processing chosen per modality on validation (a modality with too few validation
    # images keeps the shared setting: evaluate.tune_postprocessing)
    postprocess_by_modality: bool = False
    # best.pt only for an epoch that beats chance (evaluate.chance_scores); off only for smoke
    # tests of tiny networks, which learn nothing in a few steps (CI's fast mode)
    best_above_chance: bool = True
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = UNetConfig(**self.model)
        for name, choices in [("target", TARGETS), ("loss", LOSSES),
                              ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("input_mode", INPUT_MODES), ("split", SPLIT_KINDS),
                              ("tile_shares", TILE_SHARES)]:
            check_choice(name, getattr(self, name), choices)
        for f in fields(self):
            if f.name != "model":
                _check_type(f.name, getattr(self, f.name), _HINTS[f.name])
        for name, (low, high, low_open, high_open) in RANGES.items():
            check_range(name, getattr(self, name), low, high, low_open=low_open,
                        high_open=high_open)
        if self.scale_augment and self.scale_augment <= 1:
            raise ValueError(f"scale_augment is the largest zoom factor (tiles are zoomed by a "
                             f"factor in [1/s, s]): 0 (off) or above 1, got {self.scale_augment}")
        if 0 < self.nucleus_size < MIN_NUCLEUS_SIZE:
            raise ValueError(f"nucleus_size is the median nucleus diameter images are rescaled "
                             f"to: 0 (off) or at least {MIN_NUCLEUS_SIZE} pixels, got "
                             f"{self.nucleus_size}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"val_fraction + test_fraction must be below 1 (some images must "
                             f"train), got {self.val_fraction} + {self.test_fraction}")
        if self.loss == "weighted_ce" and self.target != "binary":
            raise ValueError("loss 'weighted_ce' (the paper's weight map) needs target 'binary'")
        if self.model.num_classes != self.num_classes:
            raise ValueError(f"model.num_classes is {self.model.num_classes}, but target "
                             f"{self.target!r} needs {self.num_classes} classes; leave "
                             f"num_classes out and it follows the target")
        smallest = 2**self.model.depth if self.model.padding == "same" else 1
        for name in ("tile_size", "predict_tile"):
            if getattr(self, name) < smallest:
                raise ValueError(f"{name} must be at least {smallest} pixels (2**depth) for a "
                                 f"same-padding U-Net of depth {self.model.depth}, got "
                                 f"{getattr(self, name)}")
            if getattr(self, name) > MAX_TILE:
                raise ValueError(f"{name} must be at most {MAX_TILE} pixels, got "
                                 f"{getattr(self, name)}: a tile is cut from one image (the "
                                 f"DSB's largest is 1040x1388), so a larger one is mirrored "
                                 f"border")

    @property
    def num_classes(self) -> int:
        return 3 if self.target == "three_class" else 2

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        from .files import write_json

        write_json(path, self.to_dict())


# (low, high, low_open, high_open) of every number; None: no bound
RANGES: dict[str, tuple] = {
    "w0": (0, None, False, False), "sigma": (0, None, True, False),
    "dice_weight": (0, None, False, False),
    "tile_size": (1, None, False, False), "predict_tile": (1, None, False, False),
    "batch_size": (1, None, False, False), "tiles_per_epoch": (1, None, False, False),
    "num_workers": (0, None, False, False), "seen_fraction": (0, 1, False, True),
    "scale_augment": (0, 4, False, False), "nucleus_size": (0, 256, False, False),
    "val_fraction": (0, 1, True, True), "test_fraction": (0, 1, False, True),
    "lr": (0, None, True, False), "momentum": (0, 1, False, True),
    "weight_decay": (0, None, False, False), "warmup_steps": (0, None, False, False),
    "grad_clip": (0, None, False, False), "num_epochs": (1, None, False, False),
    "val_every": (1, None, False, False), "val_max_images": (0, None, False, False),
    "seed": (0, None, False, False),
}
_HINTS = typing.get_type_hints(TrainConfig)
_MODEL_HINTS = typing.get_type_hints(UNetConfig)
MODEL_FIELDS = tuple(_MODEL_HINTS)


def _check_type(name: str, value, kind) -> None:
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
          float: lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}[kind](value)
    if not ok:
        raise TypeError(f"{name} must be a {kind.__name__}, got {value!r}")


# What the generalisation ablation kept (benchmarks/ablation_generalisation.py, docs/results.md):
# per-image percentile inputs with bright backgrounds inverted, and stain/colour augmentation.
# Scale and quality augmentation added nothing beyond the seed-to-seed spread on top of these
# (three seeds) and cost time: they stay off (options).
GENERALISE = dict(input_mode="invert", colour_augment=True)

PRESETS: dict[str, dict] = {
    "paper": dict(base_channels=64, padding="valid", batch_norm=False, dropout=0.5,
                  target="binary", loss="weighted_ce", tile_size=388, predict_tile=388,
                  batch_size=1, tiles_per_epoch=400, optimizer="sgd", lr=0.01, momentum=0.99,
                  weight_decay=0.0, schedule="constant", warmup_steps=100, grad_clip=1.0,
                  num_epochs=60),
    "practical": dict(**GENERALISE),  # the dataclass defaults, plus what generalises
    # practical for the real DSB on a 2-core CPU: 5,600 steps, sized to about an hour where
    # the CPU computes bf16 natively; the same steps take longer in float32 elsewhere (both
    # times: docs/results.md; --set num_epochs=30 is the shorter run it replaced)
    "laptop": dict(**GENERALISE, base_channels=16, tile_size=256, batch_size=8,
                   tiles_per_epoch=640, num_epochs=70, val_max_images=40, num_workers=0),
    # practical, shrunk to train in a few minutes on a laptop CPU (python -m unet_lesson demo)
    "demo": dict(**GENERALISE, base_channels=16, tile_size=128, batch_size=8,
                 tiles_per_epoch=320, num_epochs=12, warmup_steps=40, val_max_images=24,
                 num_workers=0),
}


def preset(name: str, **overrides) -> TrainConfig:
    """A named configuration, optionally with some fields changed (model fields too, by name:
    ``preset("paper", base_channels=16)``).

    Used in notebooks 08, 10 and 11b.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return from_dict({**PRESETS[name], **overrides})


def from_dict(values: dict) -> TrainConfig:
    """A config from a dict: nested (``{"model": {...}, ...}``, as ``config.json`` holds it) or
    flat (model fields beside the others, as presets have them).

    Every value is checked: unknown keys, wrong types and out-of-range numbers are refused by
    name. Strings are parsed as ``--set`` parses them (``"false"``, ``"0.01"``), so a JSON file
    written by hand gets the same treatment. ``model.num_classes`` follows the target unless
    given (then it must agree).

    Not built in a notebook: runs and checkpoints read their configuration with it.
    """
    values = dict(values)
    model = values.pop("model", {})
    if isinstance(model, UNetConfig):
        model = asdict(model)
    if not isinstance(model, dict):
        raise TypeError(f"model must be a table of network fields, got {model!r}")
    model = dict(model)
    for key in [k for k in values if k in MODEL_FIELDS]:  # the flat form
        if key in model:
            raise ValueError(f"{key} is given twice (in model and beside it); give it once")
        model[key] = values.pop(key)
    unknown = sorted(set(values) - set(_HINTS)) + sorted(f"model.{k}" for k in
                                                          set(model) - set(MODEL_FIELDS))
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; known fields: "
                         f"{sorted(set(_HINTS) - {'model'})} and model fields "
                         f"{sorted(MODEL_FIELDS)}")
    typed = {k: coerce(k, v, _HINTS[k]) for k, v in values.items()}
    net = {k: coerce(f"model.{k}", v, _MODEL_HINTS[k]) for k, v in model.items()}
    target = typed.get("target", TrainConfig.target)
    net.setdefault("num_classes", 3 if target == "three_class" else 2)
    defaults = asdict(_practical_model())
    return TrainConfig(model=UNetConfig(**{**defaults, **net}), **typed)


def coerce(key: str, value, kind):
    """``value`` as the field's type: the value itself when it has it, else parsed from text.

    Booleans take ``true/false/yes/no/on/off/1/0``; an integer field takes an integral number
    (``3`` or ``3.0``); a float field any number. Anything else raises ``ValueError`` naming
    the field.

    Not built in a notebook: :func:`apply_overrides` parses values with it.
    """
    if isinstance(value, str) and kind is not str:
        return _parse(kind, value.strip(), key)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key} takes true or false, got {value!r}")
    if kind is int:
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and \
                math.isfinite(value) and float(value).is_integer():
            return int(value)
        raise ValueError(f"{key} takes an int, got {value!r}")
    if kind is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{key} takes a float, got {value!r}")
    if not isinstance(value, kind):
        raise ValueError(f"{key} takes a {kind.__name__}, got {value!r}")
    return value


def _parse(kind, raw: str, key: str):
    if kind is bool:
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"{key} takes true or false, got {raw!r}")
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"{key} takes a{'n' if kind is int else ''} {kind.__name__}, got "
                         f"{raw!r}") from None
    return coerce(key, number, kind)


def load_config(name_or_path: str, overrides: list[str] | None = None) -> TrainConfig:
    """A preset name or a JSON file, then ``key=value`` overrides (types from the dataclass).

    Not built in a notebook: the command line (``--config`` and ``--set``).
    """
    path = Path(name_or_path)
    if name_or_path in PRESETS:
        config = preset(name_or_path)
    elif path.suffix == ".json":
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {path} is not valid JSON: {err}") from err
        if not isinstance(values, dict):
            raise ValueError(f"config file {path} must hold a JSON object of fields")
        try:
            config = from_dict(values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"config file {path}: {err}") from err
    else:
        raise ValueError(f"config {name_or_path!r} is neither a preset {sorted(PRESETS)} nor a "
                         f".json file")
    return apply_overrides(config, overrides or [])


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``["lr=0.01", "padding=valid", "elastic=false"]`` with the fields' own types.

    Model fields take their plain names (``base_channels=8``) or ``model.base_channels=8``.
    Changing the target also changes ``num_classes`` (unless it is set too).

    Not built in a notebook: :func:`load_config` and :meth:`~unet_lesson.course.run.Run.resume`.
    """
    changes: dict[str, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_").removeprefix("model.")
        if not sep or (key not in _HINTS and key not in MODEL_FIELDS) or key == "model":
            raise ValueError(f"cannot apply {item!r}: expected key=value with key one of "
                             f"{sorted(set(_HINTS) - {'model'})} or a model field "
                             f"{sorted(MODEL_FIELDS)}")
        changes[key] = raw.strip()
    if not changes:
        return config
    current = config.to_dict()
    model = current.pop("model")
    if "target" in changes and "num_classes" not in changes:
        model.pop("num_classes")  # follows the new target
    for key, raw in changes.items():
        (model if key in MODEL_FIELDS else current)[key] = raw
    return from_dict({**current, "model": model})


def flatten(cfg: TrainConfig) -> dict:
    """Every field in one level, model fields as ``model.<name>`` (for tables and diffs).

    Used in notebooks 10, 11, 11b and 12.
    """
    values = cfg.to_dict()
    return {**{f"model.{k}": v for k, v in values.pop("model").items()}, **values}


def differences(saved: TrainConfig, requested: TrainConfig,
                ignore: tuple[str, ...] = RUNTIME_FIELDS) -> list[str]:
    """``["lr: 0.001 -> 0.5", "model.base_channels: 4 -> 8"]``: every field that differs.

    Not built in a notebook: :meth:`Run.resume <unet_lesson.course.run.Run.resume>` names
    refusals with it.
    """
    a, b = flatten(saved), flatten(requested)
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k] and k not in ignore]
