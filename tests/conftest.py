import pytest

from ganforge.config import resolve_config
from ganforge.data.examples import write_example_folder

# A tiny but real budget: 256 digits of mnist5k, batch 32 → 8 batches per epoch.
# Image metrics in training are off here (tests that want them turn them on).
TINY = {"data.limit": 256, "train.batch_size": 32, "log.every": 2, "log.progress": False,
        "log.sample_every": "1 epoch", "log.checkpoint_every": "1 epoch", "eval.every": "off"}


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Feature classifiers are trained into a cache private to this test session, never ~/.cache."""
    import os
    old = os.environ.get("GANFORGE_CACHE")
    os.environ["GANFORGE_CACHE"] = str(tmp_path_factory.mktemp("ganforge-cache"))
    yield
    if old is None:
        os.environ.pop("GANFORGE_CACHE", None)
    else:
        os.environ["GANFORGE_CACHE"] = old


@pytest.fixture
def tiny_config():
    def make(preset="mnist-mlp", **overrides):
        sets = dict(TINY)
        sets.update({k.replace("__", "."): v for k, v in overrides.items()})
        if "train.epochs" not in sets:
            sets.setdefault("train.steps", 16)
        return resolve_config(preset, overrides=sets)
    return make


@pytest.fixture
def photo_folder(tmp_path):
    return write_example_folder(tmp_path / "photos")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Name the golden cases that ran without a bit-exact golden for this environment (the default preset's
    first): the anywhere tier still guarded them, but a bit-for-bit guard that is off must be seen."""
    if not any("test_golden" in str(getattr(r, "nodeid", "")) for rs in terminalreporter.stats.values() for r in rs):
        return
    import json

    from golden import CASES, environment, golden_file
    path = golden_file()
    have = json.loads(path.read_text()).get("short", {}) if path.exists() else {}
    missing = [name for name in CASES if name not in have]
    if missing:
        default = "mnist-conv-linear"
        terminalreporter.section("golden runs not guarded bit for bit")
        terminalreporter.write_line(f"environment {environment()}: {len(missing)} of {len(CASES)} case(s) have no "
                                    f"bit-exact golden (the anywhere tier checked them): {', '.join(missing)}"
                                    + (f"; the default preset's case ({default}) among them" if default in missing else ""))
        terminalreporter.write_line(f"record them on this machine: python tests/golden.py --record --cases "
                                    f"{','.join(missing)}")
