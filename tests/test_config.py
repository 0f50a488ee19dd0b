import pytest
import yaml

from ganforge.config import DEFAULT_PRESET, Config, parse_interval, parse_set, preset_names, resolve_config
from ganforge.errors import GanforgeError


def test_presets_exist_and_default_is_one_of_them():
    names = preset_names()
    assert {"mnist-mlp", "mnist-mlp-bn"} <= set(names)
    assert DEFAULT_PRESET in names


def test_preset_values_are_faithful():
    bn = resolve_config("mnist-mlp-bn")
    assert bn.model.g_hidden == (128, 256, 512, 1024) and bn.model.d_hidden == (512, 256)
    assert bn.model.bn_eps == 0.8 and bn.model.g_norm_first is False
    assert bn.optim.lr_g == bn.optim.lr_d == 2e-4 and bn.optim.betas == (0.5, 0.999)
    assert bn.train.batch_size == 64
    mlp = resolve_config("mnist-mlp")
    assert mlp.model.g_hidden == (256, 256) and mlp.model.d_hidden == (256, 256)
    assert mlp.optim.lr_g == mlp.optim.lr_d == 3e-4 and mlp.train.batch_size == 128
    assert mlp.loss == "nonsaturating" and mlp.model.z_dim == 100


def test_precedence_preset_then_file_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"optim": {"lr_g": 1.0e-3, "lr_d": 5.0e-4}, "seed": 7}))
    cfg = resolve_config("mnist-mlp", str(f), {"optim.lr_g": "1e-4", "loss": "minimax"})
    assert cfg.optim.lr_g == pytest.approx(1e-4)   # --set beats the file
    assert cfg.optim.lr_d == pytest.approx(5e-4)   # the file beats the preset
    assert cfg.optim.betas == (0.9, 0.999)         # the preset where nobody else speaks
    assert cfg.seed == 7 and cfg.loss == "minimax"


def test_file_can_name_its_preset(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: mnist-mlp\ntrain: {batch_size: 16}\n")
    cfg = resolve_config(None, str(f))
    assert cfg.preset == "mnist-mlp" and cfg.train.batch_size == 16 and cfg.model.g_hidden == (256, 256)


def test_a_budget_in_a_higher_layer_replaces_the_other_budget():
    cfg = resolve_config("mnist-mlp", overrides={"train.steps": 10})
    assert cfg.train.steps == 10 and cfg.train.epochs is None
    with pytest.raises(GanforgeError, match="both train.epochs and train.steps"):
        resolve_config("mnist-mlp", overrides={"train.steps": 10, "train.epochs": 2})


def test_set_parsing_uses_yaml_scalars():
    assert parse_set(["a=1", "b=1e-4", "c=true", "d=x", "e=[1, 2]"]) == \
        {"a": 1, "b": "1e-4", "c": True, "d": "x", "e": [1, 2]}
    with pytest.raises(GanforgeError, match="key=value"):
        parse_set(["novalue"])


def test_types_are_coerced_and_tuples_accept_commas():
    cfg = resolve_config("mnist-mlp", overrides={"optim.lr_d": "2e-4", "model.g_hidden": "64,32",
                                                 "train.batch_size": "16"})
    assert cfg.optim.lr_d == pytest.approx(2e-4) and cfg.model.g_hidden == (64, 32)
    assert cfg.train.batch_size == 16


@pytest.mark.parametrize("overrides, message", [
    ({"optim.lr_gg": 1e-4}, "unknown config key 'optim.lr_gg'.*did you mean 'optim.lr_g'"),
    ({"los": "minimax"}, "unknown config key 'los'.*did you mean 'loss'"),
    ({"loss": "minmax"}, "must be one of.*did you mean 'minimax'"),
    ({"train.batch_size": "big"}, "'train.batch_size' must be an integer"),
    ({"train.batch_size": 2.5}, "'train.batch_size' must be an integer"),
    ({"train.batch_size": 0}, "'train.batch_size' must be >= 1"),
    ({"model.z_dim": -3}, "'model.z_dim' must be >= 1"),
    ({"model.g_hidden": [256, 0]}, "'model.g_hidden' must be >= 1"),
    ({"optim.lr_g": 0}, "'optim.lr_g' must be > 0"),
    ({"optim.lr_d": -1e-3}, "'optim.lr_d' must be >= 0"),
    ({"optim.betas": [0.5]}, "'optim.betas' must be a list of 2 numbers"),
    ({"optim.betas": [1.5, 0.9]}, "'optim.betas' must be two numbers in"),
    ({"d_steps": 0}, "'d_steps' must be >= 1"),
    ({"log.sample_every": "often"}, "'log.sample_every' must be an interval"),
    ({"log.progress": "maybe"}, "'log.progress' must be true/false"),
    ({"train": 5}, "'train' .*must be a mapping"),
    ({"train.epochs": None, "train.steps": None}, "no training budget"),
])
def test_bad_values_are_one_clear_error(overrides, message):
    with pytest.raises(GanforgeError, match=message):
        resolve_config("mnist-mlp", overrides=overrides)


def test_unknown_preset_suggests_the_nearest():
    with pytest.raises(GanforgeError, match="unknown preset 'mnist-mpl'.*did you mean 'mnist-mlp'"):
        resolve_config("mnist-mpl")


def test_bad_files(tmp_path):
    with pytest.raises(GanforgeError, match="config file not found"):
        resolve_config("mnist-mlp", str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(GanforgeError, match="not valid YAML"):
        resolve_config("mnist-mlp", str(bad))
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(GanforgeError, match="must be a mapping"):
        resolve_config("mnist-mlp", str(lst))
    unk = tmp_path / "unk.yaml"
    unk.write_text("optim: {lr: 1.0e-3}\n")
    with pytest.raises(GanforgeError, match=r"unknown config key 'optim.lr' in config file .*unk.yaml"):
        resolve_config("mnist-mlp", str(unk))


def test_intervals():
    assert parse_interval("5 epochs") == (5, "epoch")
    assert parse_interval("1 epoch") == (1, "epoch")
    assert parse_interval(200) == (200, "step")
    assert parse_interval("30 steps") == (30, "step")
    for bad in ("0 steps", "x", "-1", "2 days"):
        with pytest.raises(ValueError):
            parse_interval(bad)


def test_config_round_trips_through_yaml_and_replace():
    cfg = resolve_config("mnist-mlp-bn")
    again = resolve_config(None, overrides=None, base=cfg)
    assert again == cfg
    tree = yaml.safe_load(yaml.safe_dump(cfg.to_dict()))
    from ganforge.config import build_config
    assert build_config(tree) == cfg
    assert cfg.replace(**{"train.steps": 3}).train.steps == 3
    assert isinstance(cfg, Config)


def test_interval_keys_accept_a_bare_number_of_steps():
    cfg = resolve_config("mnist-mlp", overrides={"log.checkpoint_every": 500, "log.sample_every": "2 epochs"})
    assert cfg.log.checkpoint_every == "500 steps" and cfg.log.sample_every == "2 epochs"


def test_the_configuration_page_is_generated_from_the_schema():
    """docs/configuration.md is what the schema says now (every key, with its doc): `make docs` rewrites it."""
    from pathlib import Path

    from ganforge.config import Config, reference_markdown
    page = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    assert page == reference_markdown() + "\n", "run: make docs"
    assert "| `optim.lr_g` |" in page and "| `eval.best` |" in page and "| `r1` |" in page
    assert page.count("\n| `") == sum(1 for _ in _keys(Config().to_dict()))


def _keys(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _keys(v, prefix + k + ".")
        else:
            yield prefix + k
