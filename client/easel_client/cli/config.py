"""Where the CLI's API key and server come from.

Order, first found wins: ``--url``; then, when ``--profile`` is given, that profile; then
``EASEL_API_KEY`` / ``EASEL_URL``; then the profile named by ``EASEL_PROFILE`` (or ``default``)
in the config file: ``EASEL_CONFIG``, else ``$XDG_CONFIG_HOME/easel/config.toml``, else
``~/.config/easel/config.toml``::

    [default]
    url = "https://easel.example.com"
    api_key = "esl_..."

    [staging]
    url = "https://staging.easel.example.com"
    api_key = "esl_..."
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    """The configuration is missing or wrong; the message says what to set."""


@dataclass(frozen=True)
class Settings:
    api_key: str
    url: str
    profile: str | None
    source: str


def config_path(env: Mapping[str, str]) -> Path:
    if env.get("EASEL_CONFIG"):
        return Path(env["EASEL_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "easel" / "config.toml"


def load_profiles(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}") from exc
    return {name: table for name, table in data.items() if isinstance(table, dict)}


def resolve(
    *, profile: str | None, url: str | None, env: Mapping[str, str] | None = None
) -> Settings:
    env = os.environ if env is None else env
    path = config_path(env)
    profiles = load_profiles(path)
    explicit = profile is not None
    name = profile or env.get("EASEL_PROFILE") or "default"
    if (explicit or env.get("EASEL_PROFILE")) and name not in profiles:
        raise ConfigError(f"No profile [{name}] in {path}.")
    table = profiles.get(name, {})
    from_env = {"api_key": env.get("EASEL_API_KEY", ""), "url": env.get("EASEL_URL", "")}
    layers = [table, from_env] if explicit else [from_env, table]
    values = {key: next((layer[key] for layer in layers if layer.get(key)), "") for key in from_env}
    if url:
        values["url"] = url
    if not values["api_key"]:
        raise ConfigError(f"No API key: set EASEL_API_KEY, or api_key under [{name}] in {path}.")
    if not values["url"]:
        raise ConfigError(f"No server URL: set EASEL_URL, pass --url, or set url under [{name}].")
    source = f"profile [{name}] in {path}" if table else "the environment"
    return Settings(
        api_key=str(values["api_key"]),
        url=str(values["url"]),
        profile=name if table else None,
        source=source,
    )
