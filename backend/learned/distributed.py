"""Data-parallel training under ``torchrun`` shared by the trainers (DetH, the neural renderer):
rank and world from the environment (NCCL on GPUs, gloo on CPUs), rank 0's weights broadcast,
gradients averaged in one all-reduce, logged losses averaged, masked means over the global batch.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import torch


def init_from_env():
    """(rank, world, whether this call started the process group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return rank, world, True
    return rank, world, False


def exit_worker(code: int = 0) -> None:
    """End a torchrun worker at once, its output flushed: with its process group already destroyed
    the interpreter's own exit can still abort in gloo's C++ teardown ("terminate called without
    an active exception", SIGABRT) -- 2 of 20 two-process runs on a loaded 2-core machine, 0 of
    40 when the worker ends here. A worker's last statement."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def world_size() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def broadcast_weights(module: torch.nn.Module) -> None:
    """Every rank starts from rank 0's weights."""
    if world_size() > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            torch.distributed.broadcast(t.data, src=0)


def average_grads(module: torch.nn.Module) -> None:
    """Gradients averaged over the ranks, in one all-reduce. Parameters without a gradient this
    step (the same on every rank: same graph) are left without one, as a single process leaves them."""
    world = world_size()
    if world <= 1:
        return
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    torch.distributed.all_reduce(flat)
    flat /= world
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.view_as(p.grad))


def average_stats(stats: dict) -> dict:
    """The ranks' logged losses averaged (each is a mean over its share of the batch)."""
    world = world_size()
    if world <= 1 or not stats:
        return stats
    keys = sorted(stats)
    t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return {k: float(v) / world for k, v in zip(keys, t.tolist())}


def masked_mean(t, m):
    """Mean of ``t`` over the texels of ``m`` across the whole (global) batch. Under torchrun the
    mask's size is summed over the ranks, so that the ranks' averaged losses and gradients are
    those of one process on the whole batch even where the mask depends on the data (the texels
    an expression moves): a ratio of sums, not a mean of the ranks' ratios."""
    den = (m.sum() * t.shape[1] / m.shape[1]).detach()
    world = world_size()
    if world > 1:
        den = den.clone()
        torch.distributed.all_reduce(den)
        den = den / world
    return (t * m).sum() / den.clamp_min(1.0)


@contextmanager
def process_group():
    """``(rank, world)`` for a training run; a process group this started is closed after every
    rank is done (a gloo group left alive aborts the process at exit: "terminate called without
    an active exception"). No barrier after a failure: the other ranks may never reach it, and
    torchrun stops them."""
    rank, world, owned = init_from_env()
    done = False
    try:
        yield rank, world
        done = True
    finally:
        if owned:
            if done:
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()
