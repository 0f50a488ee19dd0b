"""Text: a UTF-8 file read as sequences of ``data.seq_len`` characters, one-hot (N, V, L).

The file's last tenth (by characters) is held out for the text metrics (:mod:`ganforge.metrics.text`) and
never trained on. Every position of the training part starts a window, so an epoch is as many windows as
characters. The alphabet is the file's own characters, most frequent first; beyond ``MAX_ALPHABET`` the
rarest are read as U+FFFD.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List

import torch
import torch.nn.functional as F

from ..errors import GanforgeError

HELD_OUT = 0.1
MAX_ALPHABET = 256
UNKNOWN = "\ufffd"


def read_text(path: Path) -> str:
    """The file as text, or one clear error: empty, binary (NUL bytes), or not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise GanforgeError(f"cannot read data file {path}: {e.strerror or e}") from None
    if not raw.strip():
        raise GanforgeError(f"data file {path} is empty")
    if b"\x00" in raw[:1_000_000]:
        raise GanforgeError(f"data file {path} looks binary (it holds NUL bytes); text data must be UTF-8 text, "
                            f"images a folder")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GanforgeError(f"data file {path} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}); "
                            f"convert it, e.g. iconv -t utf-8") from None


def split_text(text: str, held_out: float = HELD_OUT) -> tuple:
    """(training part, held-out last ``held_out`` of the characters)."""
    cut = len(text) - int(len(text) * held_out)
    return text[:cut], text[cut:]


class TextData:
    """Windows of ``seq_len`` characters of ``train`` as one-hot (V, L) samples; ``held`` is kept for the metrics."""

    kind = "text"
    y = None

    def __init__(self, train: str, held: str, seq_len: int, name: str, alphabet: str = "") -> None:
        if len(train) < seq_len:
            raise GanforgeError(f"data '{name}' holds {len(train) + len(held)} characters, of which the first "
                                f"{len(train)} are for training (the last tenth is held out); one sequence needs "
                                f"data.seq_len = {seq_len}")
        if not alphabet:
            ranked = [c for c, _ in Counter(train + held).most_common()]
            alphabet = "".join(ranked[:MAX_ALPHABET - 1] + [UNKNOWN] if len(ranked) > MAX_ALPHABET else ranked)
        self.alphabet, self.seq_len, self.name, self.train_text, self.held = alphabet, seq_len, name, train, held
        self.codes = encode(train, alphabet)
        self.info = {"source": name, "kind": "text", "characters": len(train) + len(held), "train_characters":
                     len(train), "held_out_characters": len(held), "alphabet": alphabet, "seq_len": seq_len}

    @property
    def shape(self) -> tuple:
        return (len(self.alphabet), self.seq_len)

    def __len__(self) -> int:
        return len(self.codes) - self.seq_len + 1

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """The windows starting at ``index``, one-hot: (n, V, L) floats."""
        pos = index.cpu()[:, None] + torch.arange(self.seq_len)
        return one_hot(self.codes[pos], len(self.alphabet))

    def decode(self, x: torch.Tensor) -> List[str]:
        return decode(x, self.alphabet)


def encode(text: str, alphabet: str) -> torch.Tensor:
    index = {c: i for i, c in enumerate(alphabet)}
    unknown = index.get(UNKNOWN, 0)
    return torch.tensor([index.get(c, unknown) for c in text], dtype=torch.long)


def one_hot(codes: torch.Tensor, vocab: int) -> torch.Tensor:
    """(n, L) character codes → (n, V, L) one-hot floats, the layout G emits and D reads."""
    return F.one_hot(codes, vocab).transpose(1, 2).float()


def decode(x: torch.Tensor, alphabet: str) -> List[str]:
    """(n, V, L) one-hot or softmax rows → n strings: the most likely character at each position."""
    return ["".join(alphabet[i] for i in row) for row in x.argmax(1).tolist()]


def load_text(path: Path, seq_len: int) -> TextData:
    train, held = split_text(read_text(path))
    return TextData(train, held, seq_len, str(path))


SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


def tiny_shakespeare(root: Path, download: bool = True) -> Path:
    """``ROOT/tinyshakespeare/input.txt`` (karpathy/char-rnn's 1.1 MB of Shakespeare), downloaded when
    missing and ``download`` allows; offline and missing, one sentence says where to put it."""
    path = root / "tinyshakespeare" / "input.txt"
    if not path.is_file() and download:
        import urllib.request

        from ..checkpoint import write_atomic
        try:
            with urllib.request.urlopen(SHAKESPEARE_URL, timeout=30) as r:
                body = r.read()
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, lambda f: f.write(body))
        except Exception:  # network errors come in many types; what is missing is reported below
            pass
    if not path.is_file():
        raise GanforgeError(f"tinyshakespeare not found offline: put karpathy/char-rnn's "
                            f"data/tinyshakespeare/input.txt at {path}, or give any UTF-8 file with --data FILE.txt")
    return path
