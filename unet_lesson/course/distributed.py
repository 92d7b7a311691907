"""Several GPUs (or CPU processes) with ``torchrun``: data-parallel training, one writer.

    torchrun --nproc_per_node=4 -m unet_lesson train --data DIR --out runs/ddp

``torchrun`` starts one process per GPU and gives each ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``. Each process holds a copy of the network wrapped in PyTorch's
``DistributedDataParallel``, draws its own share of the epoch's tiles (the seeded sampler
split by rank) and averages the gradients with the others after every backward pass, so the
copies stay equal. Only rank 0 validates and writes (checkpoints, history, figures); the
others wait for it at the end of each epoch. A checkpoint holds every rank's random-number
state, so a resume is exact here too.

Without ``torchrun`` (``WORLD_SIZE`` unset) every function here is a no-op for one process.
Training takes the processes as one object (:func:`processes`): :class:`Torchrun` here, the
single-process :class:`unet_lesson.train.OneProcess` otherwise, so the training loop itself
knows nothing of ``torchrun``.
The backend is NCCL on CUDA and gloo on the CPU (the tests run 2 CPU processes with gloo).

Not built in a notebook: the command line's ``train`` uses it (``docs/gpu.md`` says when to).
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from ..train import OneProcess


def world_size() -> int:
    """Processes in the job (1 without ``torchrun``).

    Not built in a notebook: training under torchrun.
    """
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's number, 0 .. world_size - 1 (0 without ``torchrun``).

    Not built in a notebook: training under torchrun.
    """
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True for the one process that validates and writes (rank 0).

    Not built in a notebook: training under torchrun.
    """
    return rank() == 0


def active() -> bool:
    """True when several processes train together (and their group is set up).

    Not built in a notebook: training under torchrun.
    """
    return world_size() > 1 and dist.is_available() and dist.is_initialized()


def init(device: torch.device) -> torch.device:
    """Join the process group (started by ``torchrun``) and return this process's device.

    On CUDA each process takes the GPU ``LOCAL_RANK``; on the CPU all share it. A no-op that
    returns ``device`` for a single process.

    Not built in a notebook: training under torchrun.
    """
    if world_size() == 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def wrap(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` inside ``DistributedDataParallel`` (the gradients averaged over processes).

    Not built in a notebook: training under torchrun.
    """
    if not active():
        return net
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)


def barrier() -> None:
    """Wait until every process gets here.

    Not built in a notebook: training under torchrun.
    """
    if active():
        dist.barrier()


def mean(value: float, device: torch.device) -> float:
    """The mean of ``value`` over the processes (e.g. the epoch's training loss).

    Not built in a notebook: training under torchrun.
    """
    if not active():
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)  # NCCL: on GPU
    dist.all_reduce(tensor)
    return float(tensor.item()) / world_size()


def gather(value) -> list:
    """Every process's ``value`` (any picklable object), in rank order.

    Not built in a notebook: training under torchrun.
    """
    if not active():
        return [value]
    out = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def broadcast(value):
    """Rank 0's ``value`` (picklable), in every process.

    Not built in a notebook: training under torchrun.
    """
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown() -> None:
    """Leave the process group, every process at the same point (right after training).

    The processes first wait for each other, so none tears down its connections while
    another still uses them; only then does each destroy its group. ``train`` calls this
    before rank 0 scores the run alone: a process that tears down its group while rank 0
    still uses it can abort the job (gloo: "terminate called without an active exception").

    Not built in a notebook: training under torchrun.
    """
    if active():
        dist.barrier()
        dist.destroy_process_group()


def leave(code: int = 0) -> None:
    """End this process of a ``torchrun`` job now (after :func:`shutdown` and its last write):
    standard output and error flushed, then ``os._exit``, without the interpreter's teardown.

    The teardown can abort a process whose group is already destroyed: gloo's C++ threads may
    still hold work objects with tensors, and freeing them while Python finalises aborts with
    "terminate called without an active exception" (SIGABRT; pytorch/pytorch#179291), even
    after a clean :func:`shutdown`.

    Not built in a notebook: the command line's ``train`` under torchrun.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Torchrun:
    """The processes of a ``torchrun`` job as :func:`~unet_lesson.train.fit` takes them (the
    methods of :class:`~unet_lesson.train.OneProcess`, through this module's functions).

    Not built in a notebook: :func:`processes` returns it under torchrun.
    """

    @property
    def rank(self) -> int:
        return rank()

    @property
    def world_size(self) -> int:
        return world_size()

    @property
    def is_main(self) -> bool:
        return is_main()

    def wrap(self, net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        return wrap(net, device)

    def mean(self, value: float, device: torch.device) -> float:
        return mean(value, device)

    def gather(self, value) -> list:
        return gather(value)

    def broadcast(self, value):
        return broadcast(value)

    def barrier(self) -> None:
        barrier()


def processes() -> Torchrun | OneProcess:
    """The processes training shares its work with: :class:`Torchrun` under ``torchrun``
    (``WORLD_SIZE`` above 1), else :class:`~unet_lesson.train.OneProcess`.

    Not built in a notebook: the command line's ``train`` passes it to the run.
    """
    return Torchrun() if world_size() > 1 else OneProcess()
