"""pyproject.toml and environment.yml must ask for the same things."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_split(r) for r in reqs)


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$", requirement).groups()
    return name.lower(), spec.replace(" ", "")


def _environment_pip_requirements() -> tuple[dict[str, str], list[str]]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    items = [ln.strip()[2:].strip() for ln in lines[start + 1 :] if ln.strip().startswith("- ")]
    editable = [i for i in items if i.startswith("-e ")]
    return dict(_split(i) for i in items if not i.startswith("-e ")), editable


def test_environment_yml_lists_the_same_requirements_as_pyproject():
    env_reqs, _ = _environment_pip_requirements()
    assert env_reqs == _pyproject_requirements()


def test_environment_yml_installs_the_package_with_dev_and_python_311():
    _, editable = _environment_pip_requirements()
    assert editable == ["-e .[dev]"]
    assert "- python=3.11" in (ROOT / "environment.yml").read_text()


def test_torch_is_not_a_build_requirement():
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert not any(r.lower().startswith("torch") for r in build)


def test_required_runtime_packages_are_declared():
    names = set(_pyproject_requirements())
    for name in ["torch", "numpy", "matplotlib", "pandas", "scipy", "scikit-image", "pillow",
                 "tqdm", "kaggle", "pytest", "nbval", "jupyterlab", "ipykernel", "ipywidgets",
                 "ruff", "build", "selenium"]:
        assert name in names, name


def test_torch_floor_has_the_device_string_grad_scaler():
    """torch.amp.GradScaler("cuda") (used by unet_lesson.precision) appeared in torch 2.3."""
    spec = _pyproject_requirements()["torch"]
    floor = re.fullmatch(r">=(\d+)\.(\d+)(?:\.\d+)?", spec)
    assert floor, f"torch should have a lower bound only (install torch first), not {spec!r}"
    assert tuple(map(int, floor.groups())) >= (2, 3)
    import torch

    torch.amp.GradScaler("cpu", enabled=False)  # the installed torch has the API


def test_project_urls_name_the_repository_once():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"].startswith("https://github.com/")


def test_pytest_markers_are_registered():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    names = {marker.split(":")[0] for marker in options["markers"]}
    assert {"browser", "venv"} <= names
