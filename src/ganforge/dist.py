"""Multi-process training on PyTorch's own engine: ``torchrun --nproc_per_node=N -m ganforge train ...``.

torchrun sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous address; :func:`setup` joins
the process group (gloo on CPU, nccl on CUDA, one GPU per process: ``cuda:LOCAL_RANK``). A run
without torchrun is a world of one and touches nothing in ``torch.distributed``. Every collective
below is a no-op in a world of one, so the training loop calls them unconditionally.
"""

from __future__ import annotations

import inspect
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Dict, Iterator, List, Optional

import torch
import torch.distributed as tdist

from .errors import CollectiveTimeout, GanforgeError


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
    timeout: float = 600.0  # dist_timeout: seconds a collective waits for the other ranks
    step: int = 0  # the step being trained, for the line a stopped collective prints
    broken: bool = False  # a collective failed: the group is not destroyed (it would wait on the same peers)
    _seq: int = 0  # collectives entered so far; every rank enters the same ones in the same order

    @property
    def main(self) -> bool:
        """Rank 0: the one process that prints and writes files."""
        return self.rank == 0

    @contextmanager
    def collective(self, name: str) -> Iterator[None]:
        """Run one of this world's collectives (``name`` says which, for the error line); a world of one does
        nothing here. Each rank notes in the rendezvous store how many collectives it has entered, so a rank
        that stops waiting (past ``dist_timeout``, or a lost peer) names the ranks that never arrived. Any
        backend error here is the collective's: it becomes one :class:`CollectiveTimeout` line."""
        if self.size == 1:
            yield
            return
        self._seq += 1
        _store_set(f"ganforge/at/{self.rank}", str(self._seq))
        started = time.monotonic()
        try:
            yield
        except RuntimeError as e:  # gloo raises RuntimeError (DistError is one) for a timeout and a lost peer
            raise self._stopped(name, time.monotonic() - started, e) from None

    @contextmanager
    def bounded(self, name: str) -> Iterator[None]:
        """Around work that makes collectives among other computation (the step, with DDP's gradient
        all-reduce): only a wait as long as ``dist_timeout`` is the world's failure and becomes the one
        line; any other error (CUDA out of memory, a shape error) goes up unchanged. No store write: this
        runs every step."""
        if self.size == 1:
            yield
            return
        started = time.monotonic()
        try:
            yield
        except RuntimeError as e:
            waited = time.monotonic() - started
            if waited < 0.9 * self.timeout:
                raise
            raise self._stopped(name, waited, e) from None

    def _stopped(self, name: str, waited: float, e: BaseException) -> CollectiveTimeout:
        """The one line of a collective this rank stopped waiting in; the group is left, not destroyed."""
        self.broken = True
        if waited >= 0.9 * self.timeout:
            missing = self._missing()
            who = f"rank(s) {', '.join(map(str, missing))}" if missing else "the other ranks"
            what = (f"waited in {name} at step {self.step} for {who}, which never arrived, and gave up after "
                    f"{waited:.0f} s (dist_timeout {self.timeout:g} s)")
        else:
            what = f"lost the other ranks in {name} at step {self.step} after {waited:.0f} s ({_reason(e)})"
        return CollectiveTimeout(f"rank {self.rank} {what}; the last checkpoint is intact (--resume, or torchrun "
                                 f"--max-restarts, continues from it)")

    def _missing(self) -> List[int]:
        """The ranks that have entered fewer collectives than this one (from the store; [] when unknown)."""
        out = []
        for r in range(self.size):
            seen = _store_get(f"ganforge/at/{r}")
            if r != self.rank and seen is not None and int(seen) < self._seq:
                out.append(r)
        return out

    def barrier(self) -> None:
        if self.size > 1:
            with self.collective("a barrier"):
                tdist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj``, on every rank."""
        if self.size == 1:
            return obj
        box = [obj]
        with self.collective("a broadcast from rank 0"):
            tdist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> List[Any]:
        """Every rank's ``obj``, in rank order, on every rank (tensors inside travel as numpy arrays:
        torch's object collectives cannot unpickle some tensors, e.g. the CPU RNG state)."""
        if self.size == 1:
            return [obj]
        out: List[Any] = [None] * self.size
        with self.collective("an all-gather (RNG states for a checkpoint or an evaluation)"):
            tdist.all_gather_object(out, _map_tensors(obj, lambda t: ("__tensor__", t.cpu().numpy())))
        return [_map_tensors(o, None) for o in out]

    def mean_(self, t: torch.Tensor) -> torch.Tensor:
        """Average ``t`` over the ranks, in place."""
        if self.size > 1:
            with self.collective("an all-reduce of the logged means"):
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
        with self.collective("an all-reduce (max) of the budget's stop decision"):
            tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return float(t.item())

    def close(self) -> None:
        if self.owns_group and tdist.is_initialized() and not self.broken:
            tdist.destroy_process_group()


def _restart_scoped_store(size: int, timeout: float):
    """Under torchrun's elastic agent, the store of this restart round's process group: the agent's shared
    store under a prefix of its own (``ganforge/attempt_<TORCHELASTIC_RESTART_COUNT>``); None elsewhere.

    torchrun keeps one TCPStore for every rendezvous round and hands it to the workers without a per-round
    prefix, so the gloo addresses a killed round wrote stay there: a restarted rank that read its peer's key
    before the peer rewrote it connected to the dead process's port and failed, or hung in gloo's
    connectFullMesh (reproduced under a CPU hog; docs/decisions.md). A prefix per round leaves no stale key."""
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    base = tdist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size, is_master=False,
                          timeout=timedelta(seconds=timeout))
    return tdist.PrefixStore(f"ganforge/attempt_{attempt}", base)


def _reason(e: BaseException) -> str:
    """The gist of a backend's error: its first sentence, without the source file in brackets."""
    text = " ".join(str(e).split())
    text = text.split("] ", 1)[1] if text.startswith("[") and "] " in text else text
    return text.split(". ")[0][:160] or type(e).__name__


def _store():
    try:
        return tdist.distributed_c10d._get_default_store()
    except Exception:  # a private torch API: without it, the error line says "the other ranks"
        return None


def _store_set(key: str, value: str) -> None:
    store = _store()
    if store is not None:
        try:
            store.set(key, value)
        except Exception:
            pass


def _store_get(key: str) -> Optional[str]:
    store = _store()
    try:
        return store.get(key).decode() if store is not None and store.check([key]) else None
    except Exception:  # the store's host may be the process that died
        return None


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


def setup(device_name: str, timeout: float = 600.0) -> "tuple[World, torch.device]":
    """Join torchrun's process group when ``WORLD_SIZE`` > 1, its collectives bounded by ``timeout`` seconds
    (``dist_timeout``); return the world and this process's device."""
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
        kwargs: Dict[str, Any] = {"timeout": timedelta(seconds=timeout)}
        store = _restart_scoped_store(size, timeout)
        if store is not None:
            kwargs.update(store=store, rank=int(os.environ["RANK"]), world_size=size)
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo", **kwargs)
    world = World(tdist.get_rank(), tdist.get_world_size(), owns, timeout=timeout)
    _store_set(f"ganforge/at/{world.rank}", "0")
    return world, device
