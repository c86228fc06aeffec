"""One deployment home, wired: settings, key store, image repository and director.

The CLI, the server and the tests build their objects here and nowhere else, with the clock
passed in; nothing is created at import time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from evota.clock import Clock
from evota.config import Home, HomeSettings
from evota.errors import ConfigError, InputError
from evota.security.director import Director
from evota.security.image_repo import ImageRepository
from evota.security.keys import KeyStore

__all__ = ["Deployment", "init_home", "open_home"]


@dataclasses.dataclass(frozen=True)
class Deployment:
    home: Home
    settings: HomeSettings
    keys: KeyStore
    images: ImageRepository
    director: Director
    clock: Clock


def open_home(path: Path | str, clock: Clock) -> Deployment:
    """Open an initialised home (ConfigError if it is not one)."""
    home = Home(path)
    settings = home.settings()
    keys = KeyStore(home.online_keys, home.offline_key_dirs())
    images = ImageRepository(home, keys, clock, settings.expiry)
    director = Director(home, keys, clock, settings.expiry, images)
    if not images.roots.versions() or not director.roots.versions():
        raise ConfigError(f"{home.path} is incomplete: its repositories have no root metadata")
    return Deployment(home, settings, keys, images, director, clock)


def init_home(
    path: Path | str,
    clock: Clock,
    *,
    root_threshold: int = 1,
    root_keys: int = 1,
    settings: HomeSettings | None = None,
) -> Deployment:
    """Create a new home: settings, keys, and version 1 of both repositories."""
    if root_keys < 1 or not 1 <= root_threshold <= root_keys:
        raise InputError(
            f"--root-threshold must be between 1 and --root-keys ({root_threshold} of {root_keys} given)"
        )
    home = Home(path)
    if home.exists():
        raise InputError(f"{home.path} is already an evota home")
    if home.path.exists() and any(home.path.iterdir()):
        raise InputError(f"{home.path} exists and is not empty; choose a new folder")
    home.path.mkdir(parents=True, exist_ok=True)
    settings = settings or HomeSettings()
    home.config_file.write_text(settings.to_toml(), encoding="utf-8")
    home.lock_file.touch()  # writers lock it; created now so a refused command writes nothing
    keys = KeyStore(home.online_keys, home.offline_key_dirs())
    images = ImageRepository(home, keys, clock, settings.expiry)
    director = Director(home, keys, clock, settings.expiry, images)
    images.create(root_threshold=root_threshold, root_keys=root_keys)
    director.create(root_threshold=root_threshold, root_keys=root_keys)
    return Deployment(home, settings, keys, images, director, clock)
