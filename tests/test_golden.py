"""Golden runs: the same seeded commands give the same bytes as when the goldens were recorded
(grids, metrics lines without wall-clock fields, every checkpoint tensor). See tests/golden.py."""

import json

import pytest

from golden import CASES, environment, golden_file, run_case

GOLDEN = golden_file()
pytestmark = pytest.mark.skipif(
    not GOLDEN.exists(), reason=f"no golden runs recorded for this environment ({environment()}): "
                                f"record them with `python tests/golden.py --record`")


@pytest.mark.parametrize("name", list(CASES))
def test_golden_run_is_bit_identical(name, tmp_path, monkeypatch):
    # a private cache: the feature classifier is trained here, on one thread, as when recorded
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    want = json.loads(GOLDEN.read_text()).get("short", {}).get(name)
    if want is None:  # e.g. a preset changed on another CPU: its golden was dropped until recorded here
        pytest.skip(f"no golden run '{name}' recorded for this environment ({environment()}): record it with "
                    f"`python tests/golden.py --record --cases {name}`")
    got = run_case(name, tmp_path / "run")
    assert got["metrics"] == want["metrics"]
    assert got["grids"] == want["grids"]
    assert got["checkpoints"] == want["checkpoints"]
    assert got["final"] == want["final"]


def test_digest_sees_a_changed_tensor(tmp_path):
    """The digest is not blind: one flipped weight changes a checkpoint's hash."""
    import torch

    from golden import checkpoint_digest
    state = {"format": "ganforge-checkpoint", "G": {"w": torch.zeros(3)}, "elapsed": 1.0}
    torch.save(state, tmp_path / "a.pt")
    state["elapsed"] = 2.0  # wall-clock time is left out
    torch.save(state, tmp_path / "b.pt")
    state["G"]["w"][1] = 1e-30
    torch.save(state, tmp_path / "c.pt")
    a, b, c = (checkpoint_digest(tmp_path / f"{n}.pt") for n in "abc")
    assert a == b != c
