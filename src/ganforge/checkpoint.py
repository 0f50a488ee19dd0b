"""Atomic checkpoint writes, safe loads, and finding the latest good checkpoint of a run.

A checkpoint is a dict of tensors and plain data, written with ``torch.save`` to a temp file in the
same folder, fsynced, then renamed into place; ``checkpoints/latest`` names the newest one and is
replaced the same way. Loading uses ``weights_only=True``: a file that holds pickled code is refused.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from .errors import GanforgeError, StorageError

FORMAT = "ganforge-checkpoint"
VERSION = 1
_NAME = re.compile(r"^step-(\d{7,})\.pt$")


class NewerFormatError(GanforgeError):
    """A checkpoint written by a newer ganforge (a format version this one does not know)."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync, then rename it onto ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # disk full, read-only, I/O error, or an interrupt: no torn temp file stays
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, OSError):
            raise StorageError(f"cannot write {path}: {os_error(e)}; nothing was replaced, the previous "
                               f"checkpoint is intact") from None
        raise
    _fsync_dir(path.parent)


def os_error(e: OSError) -> str:
    """An OSError in a few words: 'No space left on device (ENOSPC)'."""
    name = errno.errorcode.get(e.errno or 0)
    return f"{e.strerror or e}" + (f" ({name})" if name else "")


def checkpoint_files(ckpt_dir: Path) -> List[Path]:
    """The run's step checkpoints, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(state: Dict[str, Any], ckpt_dir: Path, step: int, keep: int, name: Optional[str] = None,
                    metrics: Optional[Dict[str, float]] = None) -> Path:
    """Write ``state`` as ``step-NNNNNNN.pt``, point ``latest`` at it, keep the newest ``keep``.

    With ``name`` (e.g. ``best.pt``) write that file instead and leave ``latest`` and pruning alone;
    ``metrics`` go into the file and, readable without torch, into ``<name>.json``.
    """
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": VERSION, **state, **({"metrics": metrics} if metrics else {})}
    if name is not None:
        path = ckpt_dir / name
        write_atomic(path, lambda f: torch.save(state, f))
        if metrics is not None:
            info = json.dumps({"step": step, **metrics}) + "\n"
            write_atomic(path.with_suffix(".json"), lambda f: f.write(info.encode()))
        return path
    path = ckpt_dir / f"step-{step:07d}.pt"
    write_atomic(path, lambda f: torch.save(state, f))
    write_atomic(ckpt_dir / "latest", lambda f: f.write(path.name.encode() + b"\n"))
    for old in checkpoint_files(ckpt_dir)[:-keep]:
        if old != path:
            try:
                old.unlink()
            except OSError:
                pass
    return path


def latest_checkpoint(ckpt_dir: Path) -> Optional[Path]:
    """The checkpoint ``latest`` names, else the newest ``step-*.pt``, else None."""
    pointer = ckpt_dir / "latest"
    try:
        name = pointer.read_text().strip()
        if _NAME.match(name) and (ckpt_dir / name).is_file():
            return ckpt_dir / name
    except OSError:
        pass
    files = checkpoint_files(ckpt_dir)
    return files[-1] if files else None


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Load a checkpoint safely (tensors and plain data only) or raise GanforgeError naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GanforgeError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise GanforgeError(f"{path} is a directory, not a checkpoint") from None
    except Exception as e:  # truncated zip, pickled code refused by weights_only, plain garbage, ...
        reason = "it holds objects other than tensors and plain data (refused, nothing was run)" \
            if "weights_only" in str(e) or "Unsupported global" in str(e) else "it is truncated or corrupt"
        raise GanforgeError(f"cannot load checkpoint {path}: {reason}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GanforgeError(f"{path} is not a ganforge checkpoint")
    if state.get("version", 0) > VERSION:
        raise NewerFormatError(f"{path} was written by a newer ganforge (format {state.get('version')}); upgrade ganforge")
    return state


def load_latest_good(ckpt_dir: Path) -> Tuple[Path, Dict[str, Any], List[str]]:
    """The newest checkpoint that loads, starting from ``latest``; with one line per unloadable newer
    checkpoint skipped on the way. Raises GanforgeError when none loads."""
    first = latest_checkpoint(ckpt_dir)
    if first is None:
        raise GanforgeError(f"no checkpoint under {ckpt_dir}")
    candidates = [first] + [p for p in reversed(checkpoint_files(ckpt_dir)) if p != first]
    skipped: List[str] = []
    for path in candidates:
        try:
            return path, load_checkpoint(path), skipped
        except NewerFormatError:
            raise  # not damage: falling back to an older checkpoint would throw away the newer one's work
        except GanforgeError as e:
            skipped.append(str(e))
    raise GanforgeError(f"no loadable checkpoint under {ckpt_dir}: {skipped[0]}")
