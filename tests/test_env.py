"""The one place that reads the environment (fast mode, device, seeds, folders), and the
notebooks' setup cell that prints it."""

import inspect
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from unet_lesson import env
from unet_lesson.course import notebook


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("true", True), ("0", False), ("", False)]
)
def test_fast_mode_reads_the_variable(monkeypatch, value, expected):
    monkeypatch.setenv("UNET_LESSON_FAST", value)
    assert env.fast_mode() is expected


def test_by_mode_picks_the_setting(monkeypatch):
    monkeypatch.setenv("UNET_LESSON_FAST", "1")
    assert env.by_mode(fast=1, cpu=2, gpu=3) == 1
    monkeypatch.delenv("UNET_LESSON_FAST")
    assert env.by_mode(fast=1, cpu=2, gpu=3, device=torch.device("cpu")) == 2
    assert env.by_mode(fast=1, cpu=2, gpu=3, device=torch.device("cuda")) == 3


def test_apple_mps_gets_the_cpu_sizing_and_says_so(monkeypatch):
    monkeypatch.delenv("UNET_LESSON_FAST", raising=False)
    mps = torch.device("mps")
    assert env.mode(mps) == "cpu"
    assert env.by_mode(fast=1, cpu=2, gpu=3, device=mps) == 2
    monkeypatch.setattr(env, "device_name", str)  # no MPS here to ask for its name
    assert notebook.describe(mps)["mode"] == "cpu (Apple MPS: the CPU sizing)"
    assert notebook.describe(torch.device("cpu"))["mode"] == "cpu"


@pytest.mark.parametrize(("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"),
                                                       (False, False, "cpu")])
def test_the_device_cascade_is_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.delenv("UNET_LESSON_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(env, "_mps_available", lambda: mps)
    assert env.pick_device() == torch.device(expected)
    monkeypatch.setenv("UNET_LESSON_DEVICE", "cpu")  # the variable wins over the cascade
    assert env.pick_device() == torch.device("cpu")


def test_a_device_asked_for_but_missing_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(env, "_mps_available", lambda: False)
    with pytest.raises(RuntimeError, match="'cuda' was asked for, but CUDA is not available"):
        env.pick_device("cuda")
    monkeypatch.setenv("UNET_LESSON_DEVICE", "mps")
    with pytest.raises(RuntimeError, match="'mps' was asked for, but MPS is not available"):
        env.pick_device()


def test_seed_everything_repeats_every_generator():
    env.seed_everything(7)
    a = (np.random.rand(), torch.rand(1).item())  # noqa: NPY002 (the legacy global generator)
    env.seed_everything(7)
    assert (np.random.rand(), torch.rand(1).item()) == a  # noqa: NPY002


def test_folders_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("UNET_LESSON_RUNS", str(tmp_path / "r"))
    assert env.data_dir() == tmp_path / "d"
    assert env.runs_dir() == tmp_path / "r"
    monkeypatch.delenv("UNET_LESSON_DATA")
    assert env.data_dir().name == "data" and isinstance(env.data_dir(), Path)


def test_setup_prints_mode_device_and_versions(capsys, monkeypatch):
    monkeypatch.setenv("UNET_LESSON_FAST", "1")
    device = notebook.setup(seed=3)
    out = capsys.readouterr().out
    assert isinstance(device, torch.device)
    for word in ("mode", "fast", "device", "torch", "numpy", "seed"):
        assert word in out


def test_progress_is_quiet_in_fast_mode(monkeypatch):
    monkeypatch.setenv("UNET_LESSON_FAST", "1")
    bar = env.progress(range(3))
    assert bar.disable and list(bar) == [0, 1, 2]


def test_tqdm_disable_turns_bars_off(monkeypatch):
    monkeypatch.delenv("UNET_LESSON_FAST", raising=False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert env.progress(range(2)).disable


def test_describe_shows_repository_folders_relative(monkeypatch, tmp_path):
    monkeypatch.delenv("UNET_LESSON_DATA", raising=False)
    assert notebook.describe(torch.device("cpu"))["data dir"] == "<repository>/data"
    monkeypatch.setenv("UNET_LESSON_DATA", str(tmp_path))
    assert notebook.describe(torch.device("cpu"))["data dir"] == str(tmp_path)


# --------------------------------------------------------------------------------------------
# Notebooks and progress bars: JupyterLab, Colab (a subclass named Shell), CI logs
# --------------------------------------------------------------------------------------------


def _kernel_shell(monkeypatch, name="Shell"):
    """Pretend to run in a Jupyter kernel whose shell is a ``ZMQInteractiveShell`` subclass."""
    import IPython
    from ipykernel.zmqshell import ZMQInteractiveShell

    shell_class = type(name, (ZMQInteractiveShell,), {})  # Colab's is google.colab._shell.Shell
    shell = shell_class.__new__(shell_class)  # no __init__: no kernel, no singleton
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    for key in [k for k in os.environ if k == "QT_API" or k.startswith("SPYDER")]:
        monkeypatch.delenv(key)
    return shell


class _NotATerminal:
    def isatty(self):
        return False

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def test_in_notebook_counts_colab_s_shell_subclass(monkeypatch):
    pytest.importorskip("ipykernel")
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert env.in_notebook() is False  # plain Python (pytest)
    shell = _kernel_shell(monkeypatch, "Shell")
    assert type(shell).__name__ == "Shell" and env.in_notebook() is True
    monkeypatch.setenv("QT_API", "pyqt5")  # the Qt console: a kernel, but no widgets
    assert env.in_notebook() is False


def test_in_notebook_is_false_in_a_terminal_ipython(monkeypatch):
    pytest.importorskip("ipykernel")
    import IPython
    from IPython.core.interactiveshell import InteractiveShell

    terminal = InteractiveShell.__new__(InteractiveShell)
    monkeypatch.setattr(IPython, "get_ipython", lambda: terminal)
    assert env.in_notebook() is False


def test_progress_bars_show_in_a_notebook_even_when_stderr_is_not_a_terminal(monkeypatch):
    pytest.importorskip("ipywidgets")
    for name in ("UNET_LESSON_FAST", "TQDM_DISABLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.stderr", _NotATerminal())  # as in Colab
    _kernel_shell(monkeypatch)
    monkeypatch.setattr("IPython.display.display", lambda *args, **kwargs: None)
    bar = env.progress(range(3))
    assert bar.disable is False and type(bar).__module__ == "tqdm.notebook"
    assert list(bar) == [0, 1, 2]
    # and still quiet where CI stores notebook outputs or runs them fast
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert env.progress(range(3)).disable is True
    monkeypatch.delenv("TQDM_DISABLE")
    monkeypatch.setenv("UNET_LESSON_FAST", "1")
    assert env.progress(range(3)).disable is True


def test_progress_in_a_notebook_without_ipywidgets_is_a_text_bar(monkeypatch, capsys):
    pytest.importorskip("ipykernel")
    for name in ("UNET_LESSON_FAST", "TQDM_DISABLE"):
        monkeypatch.delenv(name, raising=False)
    _kernel_shell(monkeypatch)
    real_find_spec = env.importlib.util.find_spec
    monkeypatch.setattr(env.importlib.util, "find_spec",
                        lambda name, *a: None if name == "ipywidgets" else real_find_spec(name, *a))
    bar = env.progress(range(2))
    assert bar.disable is False and type(bar).__module__ == "tqdm.std"
    assert list(bar) == [0, 1]
    assert "IProgress not found" not in capsys.readouterr().err


def test_progress_outside_notebooks_follows_the_terminal(monkeypatch):
    import IPython

    for name in ("UNET_LESSON_FAST", "TQDM_DISABLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    monkeypatch.setattr("sys.stderr", _NotATerminal())  # a CI log
    assert env.progress(range(2)).disable is True

    class Terminal(_NotATerminal):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    bar = env.progress(range(2))
    assert bar.disable is False and type(bar).__module__ == "tqdm.std"
    bar.close()
    assert env.progress(range(2), disable=True).disable is True  # the caller decides


# --------------------------------------------------------------------------------------------
# CPUs: affinity and cgroup quotas
# --------------------------------------------------------------------------------------------


def _membership(tmp_path, text):
    path = tmp_path / "self-cgroup"
    path.write_text(text)
    return path


def test_cgroup_v2_quota_is_read_from_the_cgroup_and_its_parents(tmp_path):
    root = tmp_path / "cgroup"
    (root / "kube" / "pod").mkdir(parents=True)
    (root / "cpu.max").write_text("max 100000\n")  # the root: no limit
    (root / "kube" / "cpu.max").write_text("300000 100000\n")  # a parent: 3 CPUs
    (root / "kube" / "pod" / "cpu.max").write_text("150000 100000\n")  # ours: 1.5 CPUs
    membership = _membership(tmp_path, "0::/kube/pod\n")
    assert env._cgroup_cpu_quota(root, membership) == 1.5
    (root / "kube" / "pod" / "cpu.max").write_text("max 100000\n")
    assert env._cgroup_cpu_quota(root, membership) == 3.0  # the parent's limit still holds
    (root / "kube" / "cpu.max").write_text("max 100000\n")
    assert env._cgroup_cpu_quota(root, membership) is None


def test_cgroup_v1_quota_and_unreadable_files(tmp_path):
    root = tmp_path / "cgroup"
    cpu = root / "cpu,cpuacct"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("200000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    membership = _membership(tmp_path, "4:memory:/x\n3:cpu,cpuacct:/\n0::/\n")
    assert env._cgroup_cpu_quota(root, membership) == 2.0
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    assert env._cgroup_cpu_quota(root, membership) is None
    (cpu / "cpu.cfs_quota_us").write_text("garbage\n")
    assert env._cgroup_cpu_quota(root, membership) is None
    assert env._cgroup_cpu_quota(root, tmp_path / "missing") is None


def test_cpu_count_takes_the_smaller_of_affinity_and_quota(monkeypatch):
    monkeypatch.delattr(env.os, "process_cpu_count", raising=False)
    monkeypatch.setattr(env.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7},
                        raising=False)
    monkeypatch.setattr(env, "_cgroup_cpu_quota", lambda: None)
    assert env.cpu_count() == 8
    monkeypatch.setattr(env, "_cgroup_cpu_quota", lambda: 2.5)
    assert env.cpu_count() == 2  # a quota of 2.5 CPUs keeps 2 workers busy
    monkeypatch.setattr(env, "_cgroup_cpu_quota", lambda: 0.5)
    assert env.cpu_count() == 1  # never 0
    monkeypatch.setattr(env.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(env, "_cgroup_cpu_quota", lambda: 4.0)
    assert env.cpu_count() == 1


def test_cpu_count_on_this_machine_is_at_most_os_cpu_count():
    assert 1 <= env.cpu_count() <= (os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------
# Reading the package's source from a notebook; folders of an installed wheel
# --------------------------------------------------------------------------------------------


def test_show_source_prints_plain_text_outside_notebooks(monkeypatch, capsys):
    monkeypatch.setattr(env, "in_notebook", lambda: False)
    notebook.show_source(env.seed_everything)
    out = capsys.readouterr().out
    line = inspect.getsourcelines(env.seed_everything)[1]
    assert out.startswith(f"# unet_lesson/env.py, line {line}\n")
    assert inspect.getsource(env.seed_everything).rstrip() in out


def test_show_source_renders_highlighted_markdown_in_a_notebook(monkeypatch):
    from IPython.display import Markdown

    from unet_lesson.networks import DoubleConv

    shown = []
    monkeypatch.setattr(env, "in_notebook", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    assert notebook.show_source(DoubleConv) is None  # nothing for Jupyter to echo a second time
    (markdown,) = shown
    assert isinstance(markdown, Markdown)
    assert markdown.data.startswith("`unet_lesson/networks/blocks.py, line ")
    assert "```python\n" + inspect.getsource(DoubleConv).rstrip() + "\n```" in markdown.data


def test_an_installed_wheel_keeps_data_and_runs_in_the_current_folder(monkeypatch, tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')  # a stray file
    monkeypatch.setattr(env, "REPO_DIR", site)
    work = tmp_path / "content"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in ("UNET_LESSON_DATA", "UNET_LESSON_RUNS"):
        monkeypatch.delenv(name, raising=False)
    assert env.data_dir() == work / "data" and env.runs_dir() == work / "runs"
    assert notebook.describe(torch.device("cpu"))["data dir"] == str(work / "data")
