"""Run by tests/test_distributed.py under torchrun: train one tiny epoch, then write this
process's weights checksum (so the test can check that the ranks' copies agree), then leave
the process group as the train command does."""

import hashlib
import sys
from pathlib import Path

import torch
from tiny import tiny_config  # tests/tiny.py: this script runs from tests/

import unet_lesson.train as train
from unet_lesson.course import distributed
from unet_lesson.data import load_dsb_folder

data, out = Path(sys.argv[1]), Path(sys.argv[2])
built = []


def capture(cfg, device):
    net = real_build(cfg, device)
    built.append(net)
    return net


real_build, train.network_on_device = train.network_on_device, capture
samples = load_dsb_folder(data, cache=False, progress=False)
cfg = tiny_config(batch_size=2, num_epochs=1, val_max_images=1, dropout=0.2)
device = distributed.init(torch.device("cpu"))  # join the group torchrun started
train.fit(cfg, samples[:6], samples[6:8], device=device, processes=distributed.processes())
weights = torch.cat([p.detach().double().flatten() for p in built[0].parameters()])
digest = hashlib.sha256(weights.numpy().tobytes()).hexdigest()
rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
distributed.shutdown()
left = not torch.distributed.is_initialized() and not distributed.active()
(out / f"rank{rank}.txt").write_text(f"{digest} {float(weights.abs().sum())} {left}\n")
distributed.leave()  # as the train command ends a torchrun job
