"""Training configurations: presets, JSON round trip, overrides, values checked where they enter."""

import dataclasses
import json

import pytest

from unet_lesson import UNetConfig
from unet_lesson.config import (
    PRESETS,
    TrainConfig,
    apply_overrides,
    differences,
    from_dict,
    load_config,
    preset,
)
from unet_lesson.networks import UNet, count_parameters


def test_paper_preset_is_the_paper_network_on_rgb_input():
    cfg = preset("paper")
    assert (cfg.model.padding, cfg.model.batch_norm, cfg.loss, cfg.target) == (
        "valid", False, "weighted_ce", "binary")
    assert (cfg.optimizer, cfg.momentum, cfg.batch_size, cfg.elastic) == ("sgd", 0.99, 1, True)
    net = UNet(cfg.model)
    # the paper's 1-channel network (its count: tests/test_model.py); RGB adds 2 * 9 * 64 weights
    grey = UNet(dataclasses.replace(cfg.model, in_channels=1))
    assert count_parameters(net) == count_parameters(grey) + 2 * 9 * 64


def test_practical_preset_is_one_config_away():
    cfg = preset("practical")
    assert (cfg.model.padding, cfg.model.batch_norm, cfg.loss, cfg.target) == (
        "same", True, "ce_dice", "three_class")
    assert cfg.num_classes == cfg.model.num_classes == 3
    assert preset("paper").model.num_classes == 2
    assert cfg.optimizer == "adamw"  # what the code builds, by its name


def test_every_preset_builds_and_loads_by_name():
    for name in PRESETS:
        assert isinstance(preset(name), TrainConfig)
        assert load_config(name) == preset(name)
    with pytest.raises(ValueError, match="unknown preset 'cpu'"):
        preset("cpu")


def test_the_model_is_described_once():
    """The network's fields live in ``TrainConfig.model`` only (no copy of one beside it), and
    the network is built from that one description."""
    beside = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    assert not beside & set(UNetConfig.__dataclass_fields__)
    cfg = preset("demo", base_channels=4)
    assert isinstance(cfg.model, UNetConfig)
    net = UNet(cfg.model)
    assert net.config is cfg.model and net.inc[0].out_channels == 4


def test_json_round_trip(tmp_path):
    cfg = preset("demo", lr=0.003)
    cfg.save(tmp_path / "c.json")
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["model"]["base_channels"] == 16 and "base_channels" not in saved
    assert load_config(str(tmp_path / "c.json")) == cfg
    assert from_dict(saved) == cfg


def test_a_flat_config_loads_as_a_nested_one():
    """Model fields beside the others (as presets write them) or in ``model``: one config."""
    flat = {"in_channels": 3, "base_channels": 8, "depth": 3, "padding": "same",
            "batch_norm": True, "up_mode": "transpose", "dropout": 0.0, "optimizer": "adamw",
            "lr": 0.002}
    cfg = from_dict(flat)
    assert (cfg.model.base_channels, cfg.model.depth, cfg.optimizer, cfg.lr) == (
        8, 3, "adamw", 0.002)
    assert from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="optimizer must be one of"):
        from_dict({**flat, "optimizer": "adam"})


def test_overrides_use_the_field_types():
    cfg = apply_overrides(preset("practical"), ["lr=0.01", "padding=valid", "elastic=false",
                                                "num-epochs=3", "model.depth=3"])
    assert (cfg.lr, cfg.model.padding, cfg.elastic, cfg.num_epochs, cfg.model.depth) == (
        0.01, "valid", False, 3, 3)
    binary = apply_overrides(preset("practical"), ["target=binary"])
    assert binary.model.num_classes == 2  # the number of classes follows the target


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["colour=red"], "expected key=value with key one of"),
     (["lr"], "expected key=value"),
     (["elastic=maybe"], "elastic takes true or false"),
     (["batch_size=two"], "batch_size takes an int"),
     (["batch_size=2.5"], "batch_size takes an int, got 2.5"),
     (["padding=reflect"], "padding must be one of"),
     (["batch_size=0"], "batch_size must satisfy 1 <= batch_size"),
     (["target=three_class", "loss=weighted_ce"], "needs target 'binary'"),
     (["val_max_images=-3"], "val_max_images must satisfy 0 <= val_max_images"),
     (["base_channels=0"], "base_channels must satisfy 1 <= base_channels"),
     (["tile_size=1"], "tile_size must be at least 16 pixels"),
     (["lr=0"], "lr must satisfy 0 < lr"),
     (["lr=nan"], "lr must satisfy 0 < lr"),
     (["momentum=1"], "momentum must satisfy 0 <= momentum < 1"),
     (["val_fraction=0"], "val_fraction must satisfy 0 < val_fraction < 1"),
     (["val_fraction=0.5", "test_fraction=0.5"], "must be below 1"),
     (["num_classes=5"], "model.num_classes is 5, but target 'three_class' needs 3")],
)
def test_bad_overrides_say_what_is_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(preset("practical"), overrides)


@pytest.mark.parametrize(
    ("values", "message"),
    [({"lr": "abc"}, "lr takes a float, got 'abc'"),
     ({"batch_size": 8.5}, "batch_size takes an int"),
     ({"elastic": 1}, "elastic takes true or false"),
     ({"model": {"base_channels": 0}}, "base_channels must satisfy"),
     ({"model": {"colour": 1}}, r"unknown config field\(s\) \['model.colour'\]"),
     ({"base_channels": 4, "model": {"base_channels": 8}}, "given twice")],
)
def test_json_values_are_checked_like_set(tmp_path, values, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=f"config file {path}: .*{message}"):
        load_config(str(path))


def test_json_strings_are_parsed_as_set_parses_them(tmp_path):
    """{"batch_norm": "false"} once built batch norm (a non-empty string is true)."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"batch_norm": "false", "lr": "0.01", "num_epochs": "3"}))
    cfg = load_config(str(path))
    assert cfg.model.batch_norm is False and cfg.lr == 0.01 and cfg.num_epochs == 3


def test_a_config_built_in_code_is_checked_too():
    with pytest.raises(TypeError, match="lr must be a float"):
        TrainConfig(lr="0.1")
    with pytest.raises(ValueError, match="num_workers must satisfy 0 <= num_workers"):
        TrainConfig(num_workers=-1)


def test_differences_name_every_changed_field():
    a = preset("laptop")
    b = apply_overrides(a, ["lr=0.5", "base_channels=8", "num_workers=4"])
    assert differences(a, b) == ["model.base_channels: 16 -> 8", "lr: 0.001 -> 0.5"]
    assert "num_workers: 0 -> 4" in differences(a, b, ignore=())


def test_bad_names_and_files(tmp_path):
    with pytest.raises(ValueError, match="neither a preset"):
        load_config("fancy")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['colour'\]"):
        from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="unknown preset"):
        preset("fancy")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["nucleus_size=2"], "nucleus_size is the median nucleus diameter .* at least 4 pixels"),
     (["nucleus_size=-1"], "nucleus_size must satisfy 0 <= nucleus_size <= 256"),
     (["nucleus_size=300"], "nucleus_size must satisfy 0 <= nucleus_size <= 256"),
     (["tile_shares=pixels"], "tile_shares must be one of"),
     (["postprocess_by_modality=maybe"], "postprocess_by_modality takes true or false"),
     (["amp_cpu=sometimes"], "amp_cpu takes true or false")],
)
def test_the_accuracy_options_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(preset("laptop"), overrides)


def test_the_accuracy_options_default_to_today_but_bf16():
    cfg = preset("laptop")
    assert (cfg.nucleus_size, cfg.tile_shares, cfg.postprocess_by_modality) == \
        (0.0, "image", False)
    assert cfg.amp_cpu  # bf16 where the CPU has it natively (precision.autocast_dtype)
    on = apply_overrides(cfg, ["nucleus_size=20", "tile_shares=group",
                               "postprocess_by_modality=true", "amp_cpu=false"])
    assert (on.nucleus_size, on.tile_shares, on.postprocess_by_modality, on.amp_cpu) == \
        (20.0, "group", True, False)
