"""Multi-process training on PyTorch's own engine: ``torchrun --nproc_per_node=N -m ganforge train ...``.

torchrun sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous address; :func:`setup` joins
the process group (gloo on CPU, nccl on CUDA, one GPU per process: ``cuda:LOCAL_RANK``). A run
without torchrun is a world of one and touches nothing in ``torch.distributed``. Every collective
below is a no-op in a world of one, so the training loop calls them unconditionally.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Dict, List

import torch
import torch.distributed as tdist

from .errors import GanforgeError


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; ``cuda`` without a GPU is bad input."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GanforgeError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


@dataclass
class World:
    rank: int = 0
    size: int = 1
    owns_group: bool = False  # we initialised the process group, so we destroy it when done

    @property
    def main(self) -> bool:
        """Rank 0: the one process that prints and writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            tdist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj``, on every rank."""
        if self.size == 1:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> List[Any]:
        """Every rank's ``obj``, in rank order, on every rank (tensors inside travel as numpy arrays:
        torch's object collectives cannot unpickle some tensors, e.g. the CPU RNG state)."""
        if self.size == 1:
            return [obj]
        out: List[Any] = [None] * self.size
        tdist.all_gather_object(out, _map_tensors(obj, lambda t: ("__tensor__", t.cpu().numpy())))
        return [_map_tensors(o, None) for o in out]

    def mean_(self, t: torch.Tensor) -> torch.Tensor:
        """Average ``t`` over the ranks, in place."""
        if self.size > 1:
            tdist.all_reduce(t)
            t /= self.size
        return t

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any (stop together: a signal, a time budget)."""
        return bool(self.max(1.0 if flag else 0.0, device)) if self.size > 1 else flag

    def max(self, value: float, device: torch.device) -> float:
        """The largest of the ranks' ``value``s, on every rank."""
        if self.size == 1:
            return value
        t = torch.tensor([float(value)], device=device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return float(t.item())

    def close(self) -> None:
        if self.owns_group and tdist.is_initialized():
            tdist.destroy_process_group()


def _map_tensors(obj: Any, to_plain) -> Any:
    """Tensors → ("__tensor__", array) with ``to_plain``; back again with ``None``."""
    if to_plain is not None and isinstance(obj, torch.Tensor):
        return to_plain(obj)
    if to_plain is None and isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "__tensor__":
        return torch.from_numpy(obj[1])
    if isinstance(obj, dict):
        return {k: _map_tensors(v, to_plain) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, to_plain) for v in obj)
    return obj


def ddp(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` in DistributedDataParallel, its buffers (BatchNorm statistics) left per process."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    kwargs: Dict[str, Any] = {"device_ids": [device.index]} if device.type == "cuda" else {}
    # torch ≥ 2.14 renamed broadcast_buffers to forward_sync_buffers (both: no buffer sync in forward)
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        kwargs["forward_sync_buffers"] = False
    else:
        kwargs["broadcast_buffers"] = False
    return DDP(module, **kwargs)


def setup(device_name: str) -> "tuple[World, torch.device]":
    """Join torchrun's process group when ``WORLD_SIZE`` > 1; return the world and this process's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if size <= 1:
        return World(), device
    if not tdist.is_available():
        raise GanforgeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise GanforgeError(f"process with LOCAL_RANK {local_rank} has no GPU: this machine has "
                                f"{torch.cuda.device_count()}; start at most that many processes per node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not tdist.is_initialized()
    if owns:
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(tdist.get_rank(), tdist.get_world_size(), owns), device
