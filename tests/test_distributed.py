"""Several processes with torchrun (2 CPU processes, gloo): training runs, rank 0 alone
writes, the copies of the network stay equal, and a resume is exact."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import tiny_overrides

from unet_lesson.checkpoint import load_checkpoint

HERE = Path(__file__).resolve().parent
# tests/tiny.py's configuration (2 epochs), batch 2 (one per process), with drop-out: its
# random draws must stay in step across the processes and across a resume
TINY = tiny_overrides(batch_size=2, val_max_images=1, dropout=0.2)

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="this torch has no torch.distributed")


def torchrun(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "UNET_LESSON_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "UNET_LESSON_DATA": str(cwd / "data")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def tiny(tiny_data, tmp_path_factory):
    return tmp_path_factory.mktemp("ddp"), tiny_data[0]  # conftest's synthetic set


def test_two_processes_train_and_only_rank_0_writes(tiny):
    base, root = tiny
    result = torchrun("-m", "unet_lesson", "train", "--data", str(root), "--out",
                      str(base / "run"), "--set", *TINY, cwd=base)
    saved = [line for line in result.stdout.splitlines() if "saved last.pt" in line]
    assert [line.split(":")[0] for line in saved] == ["epoch 1/2", "epoch 2/2"]  # once each
    assert result.stdout.count("(2 process(es))") == 1 and "test split: DSB score" in \
        result.stdout
    state = load_checkpoint(base / "run" / "last.pt")
    assert state["epoch"] == 1 and len(state["rng_per_rank"]) == 2
    assert len((base / "run" / "history.csv").read_text().splitlines()) == 3
    assert not [p for p in (base / "run").iterdir() if p.name.endswith(".tmp")]


def test_the_ranks_copies_of_the_network_agree(tiny):
    base, root = tiny
    out = base / "weights"
    out.mkdir()
    torchrun(str(HERE / "ddp_worker.py"), str(root), str(out), cwd=base)
    digests = [(out / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert digests[0][:2] == digests[1][:2]  # the same weights after the steps, bit for bit
    assert digests[0][2] == digests[1][2] == "True"  # both left the group after shutdown()


def test_a_resume_under_torchrun_is_exact(tiny):
    base, root = tiny
    common = ["-m", "unet_lesson", "train", "--data", str(root)]
    torchrun(*common, "--out", str(base / "straight"), "--set", *TINY, cwd=base)
    torchrun(*common, "--out", str(base / "broken"), "--minutes", "0.0001", "--set", *TINY,
             cwd=base)  # stops after the first epoch
    assert load_checkpoint(base / "broken" / "last.pt")["epoch"] == 0
    torchrun(*common, "--out", str(base / "broken"), "--resume", cwd=base)
    a = load_checkpoint(base / "straight" / "last.pt")["model"]
    b = load_checkpoint(base / "broken" / "last.pt")["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name
