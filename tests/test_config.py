"""Configs: YAML validated by pydantic, unknown keys rejected, --set overrides, errors name the field."""
from __future__ import annotations

import pytest

from retrieval_kd.config import StrictModel, load_config, parse_overrides
from retrieval_kd.errors import ConfigError


class Train(StrictModel):
    epochs: int = 1
    lr: float = 1e-3


class Cfg(StrictModel):
    name: str
    train: Train = Train()


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: cacm\ntrain:\n  epochs: 2\n")
    cfg = load_config(p, Cfg, ["train.lr=0.01", "name=med"])
    assert cfg.name == "med" and cfg.train.epochs == 2 and cfg.train.lr == 0.01
    assert parse_overrides(["a.b.c=[1, 2]"]) == {"a": {"b": {"c": [1, 2]}}}


@pytest.mark.parametrize(
    "text,match",
    [
        ("name: x\ntrain:\n  epoch: 2\n", r"train\.epoch: Extra inputs"),
        ("name: x\ntrain:\n  epochs: many\n", r"train\.epochs"),
        ("train: {}\n", r"name: Field required"),
        ("name: [unclosed\n", r"c.yaml:\d+: invalid YAML"),
    ],
)
def test_errors_name_the_field(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p, Cfg)


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", Cfg)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, Cfg, ["justakey"])
