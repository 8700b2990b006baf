"""YAML configs validated by pydantic (unknown keys rejected), with `--set a.b=value` overrides."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from retrieval_kd.errors import ConfigError
from retrieval_kd.paths import run_path

T = TypeVar("T", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors; defaults are validated too (RunPath below)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_default=True)


def _run_path(value: str | None) -> str | None:
    return None if value is None else str(run_path(value))


# A run's input or output path: `runs/...` lands under the runs root ($RKD_RUNS; see paths.run_path).
RunPath = Annotated[str, AfterValidator(_run_path)]


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """['train.epochs=5', 'loss=kl'] -> nested dict, values parsed as YAML scalars."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge `over` into a copy of `base`."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None, model: type[T], overrides: list[str] | None = None) -> T:
    """Read YAML (or start from defaults when path is None), apply overrides, validate; errors name the field."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
    data = deep_merge(data, parse_overrides(overrides))
    try:
        return model.model_validate(data)
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{path or '<config>'}: {msgs}") from None
