"""The released package, installed as a student gets it: a wheel, and the setup cell in a runtime.

One fresh virtual environment (torch from the local CPU wheel, then the course's wheel with its
dependencies from the package index) serves every test here:

* ``python -m build`` makes an sdist and a wheel of a copy of the checkout; the wheel, installed
  NON-editable, runs ``UNET_LESSON_FAST=1 python -m unet_lesson demo`` from a folder outside the
  repository, and writes its data and runs there, never into the environment;
* a hosted runtime, simulated: a kernel like Colab's (``google.colab`` imported at start, a shell
  class named ``Shell`` derived from ipykernel's, stderr not a terminal) runs notebook 00's setup
  cell exactly as stored, then a probe cell that reports what the kernel sees, in three states:

  - **no package**: the cell's own default, ``unet-lesson @ git+<Repository>@v<version>``, is
    installed from a local git repository tagged ``v<version>`` (git's ``url.<base>.insteadOf``
    stands in for GitHub, which this test cannot reach);
  - **another version installed**: it is replaced by the notebook's version, in the same kernel,
    here through ``UNET_LESSON_PIP_SPEC`` pointing at the local wheel;
  - **the right version installed**: pip is never called (a stub ``pip`` module on the path
    would record any call).

The rest of notebook 00 is not run here: the browser test runs it (or nbval, where the browser
test cannot run), and every notebook runs once per ``pytest``. That the setup cell is the
course's template is checked in tests/test_setup_cell.py. Most of this test's time is the
environment (pip) and the demo (training).

Marked ``venv`` (``pytest -m "not venv"`` leaves it out); skips when ``build``, ``git`` or
``nbclient`` is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

pytestmark = pytest.mark.venv

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
VERSION = PROJECT["version"]
REPOSITORY = PROJECT["urls"]["Repository"]
OTHER_VERSION = "0.0.1" if VERSION != "0.0.1" else "0.0.2"
NOTEBOOK_00 = ROOT / "notebooks" / "00_welcome_and_setup.ipynb"
TIMEOUT = 600


def _missing() -> str | None:
    if importlib.util.find_spec("build") is None:
        return "`build` is not installed (pip install build; it is in the dev extra)"
    if importlib.util.find_spec("nbclient") is None:
        return "nbclient is not installed (it comes with jupyterlab/nbconvert)"
    if shutil.which("git") is None:
        return "git is not installed"
    return None


if (_why := _missing()) is not None:
    pytest.skip(_why, allow_module_level=True)


def _run(cmd, *, cwd=None, env=None, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail the test with its output when it fails."""
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env or _clean_env(),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited with {done.returncode}:\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}", pytrace=False)
    return done


def _clean_env(**extra) -> dict[str, str]:
    """This process's environment without the course's variables or anything that would let
    the venv see the checkout (PYTHONPATH, VIRTUAL_ENV)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("UNET_LESSON_", "JUPYTER", "JPY_"))
           and k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "TQDM_DISABLE", "MPLBACKEND"}}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _copy_sources(dest: Path, version: str | None = None) -> Path:
    """What a build needs (pyproject, README, the package), optionally at another version."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "unet_lesson", dest / "unet_lesson",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if version is not None:
        for path, key in ((dest / "pyproject.toml", "version"),
                          (dest / "unet_lesson" / "__init__.py", "__version__")):
            text, count = re.subn(rf'(?m)^{key} = "[^"]*"', f'{key} = "{version}"',
                                  path.read_text(encoding="utf-8"), count=1)
            assert count == 1, f"no {key} line in {path}"
            path.write_text(text, encoding="utf-8")
    return dest


# --------------------------------------------------------------------------------------------
# Fixtures: the distributions, one virtual environment, a Colab-like kernel
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """sdist and wheel of the checkout (as ``python -m build`` makes them), and a wheel of the
    same code at another version number."""
    root = tmp_path_factory.mktemp("dists")
    source = _copy_sources(root / "source")
    _run([sys.executable, "-m", "build", "--outdir", root / "dist", source])
    other = _copy_sources(root / "other", version=OTHER_VERSION)
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", root / "other-dist", other])
    (sdist,) = (root / "dist").glob("*.tar.gz")
    (wheel,) = (root / "dist").glob("*.whl")
    (other_wheel,) = (root / "other-dist").glob("*.whl")
    yield SimpleNamespace(source=source, sdist=sdist, wheel=wheel, other_wheel=other_wheel)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def venv(tmp_path_factory, dists):
    """A fresh venv: the same torch as here (the local CPU wheel), then the course's wheel with
    its dependencies, ipykernel and ipywidgets (as in Colab). No byte-compiling: faster."""
    import torch

    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", root / "venv"])
    python = root / "venv" / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--no-compile"]
    _run([*pip, f"torch=={torch.__version__.split('+')[0]}"])
    _run([*pip, dists.wheel, "ipykernel", "ipywidgets"])
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                .stdout.strip())
    yield SimpleNamespace(python=python, site=site, root=root)
    # 1.2 GB, not worth keeping for pytest's last three runs; removing it can take a minute on a
    # busy disk, so a detached `rm` does it while the other tests go on
    subprocess.Popen(["rm", "-rf", str(root)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _installed(venv) -> str | None:
    """The version of unet-lesson installed in the venv, or None."""
    done = subprocess.run([str(venv.python), "-c",
                           "import importlib.metadata as m; print(m.version('unet-lesson'))"],
                          capture_output=True, text=True, env=_clean_env(), cwd=venv.root)
    return done.stdout.strip() if done.returncode == 0 else None


def _install(venv, wheel: Path | None) -> None:
    """Put the venv in a known state: ``wheel`` installed (no deps), or no unet-lesson at all."""
    if wheel is None:
        if _installed(venv) is not None:
            _run([venv.python, "-m", "pip", "uninstall", "--yes", "--quiet", "unet-lesson"])
    else:
        _run([venv.python, "-m", "pip", "install", "--quiet", "--no-compile", "--no-deps",
              "--force-reinstall", wheel])


COLAB_KERNEL = '''\
"""A stand-in for Colab's kernel: google.colab imported at start, a shell class named Shell."""
import google.colab  # noqa: F401  (Colab's kernel imports it before any cell runs)
from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp
from ipykernel.zmqshell import ZMQInteractiveShell
from traitlets import Type


class Shell(ZMQInteractiveShell):
    """Colab's shell is google.colab._shell.Shell, a subclass of ipykernel's."""


class Kernel(IPythonKernel):
    shell_class = Type(Shell)


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=Kernel)
'''

# the last cell of every run: what the kernel looks like from inside, as JSON
PROBE = textwrap.dedent('''\
    import importlib.metadata, json, os, sys
    import unet_lesson
    from unet_lesson import env
    from unet_lesson.course import notebook
    os.environ.pop("UNET_LESSON_FAST")  # a student's runtime: bars on
    bar = env.progress(range(2))
    dist = importlib.metadata.distribution("unet-lesson")
    print(json.dumps({
        "shell": type(get_ipython()).__name__, "in_notebook": env.in_notebook(),
        "colab": notebook.in_colab(), "stderr_tty": sys.stderr.isatty(),
        "bar_disabled": bar.disable, "bar_module": type(bar).__module__,
        "version": unet_lesson.__version__, "metadata_version": dist.version,
        "direct_url": json.loads(dist.read_text("direct_url.json") or "{}"),
        "package": unet_lesson.__file__, "env_module": env.__file__,
        "data_dir": str(env.data_dir()), "runs_dir": str(env.runs_dir()),
    }))
    bar.close()''')


@pytest.fixture(scope="module")
def colab(tmp_path_factory, venv):
    """Runs a list of cells in a Colab-like kernel of the venv; returns their outputs."""
    nbformat = pytest.importorskip("nbformat")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    root = tmp_path_factory.mktemp("colab")
    stub = root / "stub"
    (stub / "google" / "colab").mkdir(parents=True)  # `google` stays a namespace package
    (stub / "google" / "colab" / "__init__.py").write_text('"""A stub of google.colab."""\n')
    (stub / "colab_kernel.py").write_text(COLAB_KERNEL)
    kernels = root / "kernels"
    (kernels / "colab-sim").mkdir(parents=True)
    (kernels / "colab-sim" / "kernel.json").write_text(json.dumps({
        "argv": [str(venv.python), "-m", "colab_kernel", "-f", "{connection_file}"],
        "display_name": "Colab stand-in", "language": "python",
    }))

    def run(cells: list[str], workdir: Path, *, path_first: Path | None = None, **env_vars):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        paths = [str(p) for p in (path_first, stub) if p is not None]
        env = _clean_env(PYTHONPATH=os.pathsep.join(paths), UNET_LESSON_FAST="1",
                         MPLCONFIGDIR=root / "matplotlib", IPYTHONDIR=root / "ipython",
                         JUPYTER_RUNTIME_DIR=root / "runtime", **env_vars)
        km = KernelManager(kernel_name="colab-sim",
                           kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
        client = NotebookClient(nb, km=km, timeout=TIMEOUT, kernel_name="colab-sim",
                                resources={"metadata": {"path": str(workdir)}})
        try:
            client.execute(env=env)
        except CellExecutionError as error:
            pytest.fail(f"a cell failed in the Colab stand-in:\n{str(error)[-4000:]}",
                        pytrace=False)
        return [_text(cell) for cell in nb.cells]

    return run


def _text(cell) -> str:
    """All text a cell showed (stdout, stderr, results), in order."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def _setup_cell() -> str:
    """Notebook 00's setup cell, exactly as stored."""
    cells = json.loads(NOTEBOOK_00.read_text(encoding="utf-8"))["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def _probe(output: str) -> dict:
    """The probe cell's JSON line (the cell also shows the progress bar)."""
    return json.loads(re.findall(r'\{"shell".*\}', output)[-1])


def _files(folder: Path) -> set[str]:
    """Every file under ``folder`` except byte-code caches (Python writes those on import)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


def test_the_wheel_installed_outside_the_repository_runs_the_demo(dists, venv, tmp_path):
    with tarfile.open(dists.sdist) as sdist:
        names = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in sdist.getnames()
                 if len(Path(n).parts) > 1}
    assert {"pyproject.toml", "README.md", "unet_lesson/env.py", "unet_lesson/__main__.py",
            "unet_lesson/course/download.py"} <= names
    with zipfile.ZipFile(dists.wheel) as wheel:
        members = wheel.namelist()
        metadata = wheel.read(next(n for n in members if n.endswith(".dist-info/METADATA")))
    assert all(m.startswith(("unet_lesson/", f"unet_lesson-{VERSION}.dist-info/"))
               for m in members), members
    assert {"unet_lesson/course/releases/stage1_train_fixed.json",  # package data
            "unet_lesson/course/timings.json"} <= set(members)
    metadata = metadata.decode()
    assert f"\nVersion: {VERSION}\n" in metadata
    assert f"Project-URL: Repository, {REPOSITORY}" in metadata
    assert "Requires-Dist: torch>=" in metadata

    _install(venv, dists.wheel)
    work = tmp_path / "work"  # like Colab's /content: not the repository, not the venv
    work.mkdir()
    before = _files(venv.root)
    env = _clean_env(UNET_LESSON_FAST="1", MPLCONFIGDIR=tmp_path / "matplotlib")
    where = _run([venv.python, "-c", "import json, unet_lesson; from unet_lesson import env; "
                  "print(json.dumps([unet_lesson.__file__, str(env.data_dir()), "
                  "str(env.runs_dir())]))"], cwd=work, env=env)
    package, data_dir, runs_dir = json.loads(where.stdout)
    assert Path(package).is_relative_to(venv.site), package  # the wheel, not the checkout
    assert (Path(data_dir), Path(runs_dir)) == (work / "data", work / "runs")

    demo = _run([venv.python, "-m", "unet_lesson", "demo"], cwd=work, env=env)
    metrics = json.loads((work / "runs" / "demo" / "metrics.json").read_text())
    assert metrics, demo.stdout
    assert (work / "runs" / "demo" / "comparison.png").is_file()
    assert (work / "data").is_dir()
    assert _files(venv.root) == before, "the demo wrote into the virtual environment"


def test_setup_cell_in_a_fresh_colab_like_runtime_installs_the_tagged_version(
        dists, venv, colab, tmp_path):
    """No package: the cell's own default spec, git+<Repository>@v<version>, from a local git
    repository that stands in for GitHub."""
    _install(venv, None)
    assert _installed(venv) is None
    # the repository: the checkout's sources, committed and tagged like a release
    repo = tmp_path / "repository"
    shutil.copytree(dists.source, repo)
    git = ["git", "-C", repo, "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    _run(["git", "init", "--quiet", repo])
    _run([*git, "add", "--all"])
    _run([*git, "commit", "--quiet", "--message", f"release {VERSION}"])
    _run([*git, "tag", f"v{VERSION}"])
    commit = _run([*git, "rev-parse", "HEAD"]).stdout.strip()
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f'[url "{repo.as_uri()}"]\n\tinsteadOf = {REPOSITORY}\n')

    work = tmp_path / "content"
    work.mkdir()
    outputs = colab([_setup_cell(), PROBE], work, GIT_CONFIG_GLOBAL=gitconfig,
                    GIT_CONFIG_NOSYSTEM="1")

    setup = outputs[0]
    assert f"unet_lesson not installed: installing unet-lesson @ git+{REPOSITORY}@v{VERSION}" \
        in setup, setup
    assert re.search(r"(?m)^colab\s+: True$", setup), setup
    assert re.search(rf"(?m)^unet_lesson\s+: {re.escape(VERSION)}$", setup), setup
    assert re.search(r"(?m)^data dir\s+: " + re.escape(str(work / "data")) + "$", setup), setup
    probe = _probe(outputs[-1])
    assert probe["direct_url"]["url"] == REPOSITORY
    assert probe["direct_url"]["vcs_info"]["requested_revision"] == f"v{VERSION}"
    assert probe["direct_url"]["vcs_info"]["commit_id"] == commit
    assert probe["version"] == probe["metadata_version"] == VERSION
    assert Path(probe["package"]).is_relative_to(venv.site)
    # Colab's kernel: a Shell subclass, stderr no terminal; bars are widgets all the same
    assert (probe["shell"], probe["in_notebook"], probe["colab"]) == ("Shell", True, True)
    assert probe["stderr_tty"] is False
    assert (probe["bar_disabled"], probe["bar_module"]) == (False, "tqdm.notebook")
    assert Path(probe["data_dir"]) == work / "data"
    assert _installed(venv) == VERSION


def test_setup_cell_replaces_another_version_in_the_same_kernel(dists, venv, colab, tmp_path):
    """Another version installed (and imported by the cell): the notebook's version replaces
    it, from UNET_LESSON_PIP_SPEC (a local wheel), with no kernel restart."""
    _install(venv, dists.other_wheel)
    assert _installed(venv) == OTHER_VERSION
    outputs = colab([_setup_cell(), PROBE], tmp_path, UNET_LESSON_PIP_SPEC=dists.wheel)
    setup = outputs[0]
    assert f"unet_lesson {OTHER_VERSION}: installing {dists.wheel}" in setup, setup
    assert re.search(rf"(?m)^unet_lesson\s+: {re.escape(VERSION)}$", setup), setup
    probe = _probe(outputs[-1])
    assert probe["version"] == probe["metadata_version"] == VERSION
    assert probe["direct_url"]["url"] == dists.wheel.as_uri()
    assert Path(probe["env_module"]).is_relative_to(venv.site)
    assert _installed(venv) == VERSION


def test_setup_cell_with_the_right_version_never_calls_pip(dists, venv, colab, tmp_path):
    _install(venv, dists.wheel)
    record = tmp_path / "pip-called"
    fake = tmp_path / "fake-pip" / "pip"  # found before the real pip by `python -m pip`
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(
        f"import sys\nopen({str(record)!r}, 'a').write(' '.join(sys.argv) + '\\n')\nsys.exit(3)\n")
    installed = {p.name: p.stat().st_mtime_ns for p in venv.site.glob("unet_lesson*")}

    outputs = colab([_setup_cell(), PROBE], tmp_path, path_first=fake.parent,
                    UNET_LESSON_PIP_SPEC=tmp_path / "no-such.whl")
    setup = outputs[0]
    assert not record.exists(), f"pip was called: {record.read_text()}"
    assert "installing" not in setup, setup
    assert re.search(rf"(?m)^unet_lesson\s+: {re.escape(VERSION)}$", setup), setup
    assert _probe(outputs[-1])["version"] == VERSION
    assert {p.name: p.stat().st_mtime_ns for p in venv.site.glob("unet_lesson*")} == installed
    # and the stub does catch a call: the same kernel set-up, with the package missing
    _install(venv, None)
    with pytest.raises(pytest.fail.Exception, match="SystemExit.*pip could not install"):
        colab([_setup_cell()], tmp_path, path_first=fake.parent,
              UNET_LESSON_PIP_SPEC=tmp_path / "no-such.whl")
    assert record.read_text().count("install") == 1
