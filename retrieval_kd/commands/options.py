"""Helpers shared by command modules: comma-separated option values and the command line of a run."""
from __future__ import annotations

import shlex
from pathlib import Path

import typer


def split_list(text: str, sep: str = ",") -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c'] (items stripped, empty ones dropped)."""
    return [item.strip() for item in text.split(sep) if item.strip()]


def split_ints(text: str) -> list[int]:
    """'8,16' -> [8, 16]; '' -> []."""
    return [int(item) for item in split_list(text)]


def split_floats(text: str, option: str) -> list[float]:
    """'0,0.5' -> [0.0, 0.5]; ConfigError naming `option` for an item that is not a number."""
    from retrieval_kd.errors import ConfigError

    out = []
    for item in split_list(text):
        try:
            out.append(float(item))
        except ValueError:
            raise ConfigError(f"{option}: {item!r} is not a number (expected e.g. 0,0.25,0.5)") from None
    return out


def command_line(ctx: typer.Context) -> str:
    """The running command with the options given on its command line (recorded next to a run's results)."""
    parts: list[str] = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name != "COMMANDLINE":
            continue
        value, opt, is_option = ctx.params[param.name], param.opts[0], param.param_type_name == "option"
        if is_option and getattr(param, "is_flag", False):
            parts += [opt] if value else param.secondary_opts[:1]
        elif is_option and param.multiple:
            for item in value:
                parts += [opt, str(item)]
        elif is_option:
            parts += [opt, str(value)]
        elif isinstance(value, list | tuple):  # an argument taking several values
            parts += [str(v) for v in value]
        else:
            parts.append(str(value))
    return " ".join([ctx.command_path, *(shlex.quote(p) for p in parts)])


def resolve_config(ctx: typer.Context, param: str, value: str | Path | None) -> Path | None:
    """A config file option: the path as given, else the checkout's file of that name (configs/...).

    Given on the command line and found nowhere: an error naming it. Left at its default and absent (an installed
    package without the checkout's configs/): None, with one printed line saying the built-in defaults are used.
    """
    from retrieval_kd.errors import ConfigError
    from retrieval_kd.paths import REPO_DIR

    if value is None:
        return None
    path = Path(value).expanduser()
    for cand in (path, REPO_DIR / path):
        if cand.is_file():
            return cand
    source = ctx.get_parameter_source(param)
    if source is not None and source.name == "DEFAULT":
        typer.echo(f"note: default config {value} not found (no checkout here); using the built-in defaults",
                   err=True)
        return None
    raise ConfigError(f"{value}: config file not found (looked in {Path.cwd()} and {REPO_DIR})")
