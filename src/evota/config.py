"""The deployment home and its settings, in one place.

A home is a folder that holds everything one evota deployment owns:

    HOME/evota.toml            settings (this module reads and writes it)
    HOME/keys/                 online private keys (snapshot, timestamp, director)
    HOME/offline/              offline private keys (roots, image targets); movable to an
                               air-gapped machine, its path is a setting
    HOME/repo/image/           the Uptane image repository (a standard TUF repository)
    HOME/repo/director/        the Uptane director repository (one TUF chain per vehicle)
    HOME/evota.db              the embedded database (SQLite) unless EVOTA_DATABASE_URL is set

Environment variables win over the file: EVOTA_HOME picks the home, EVOTA_DATABASE_URL the
database, EVOTA_OFFLINE_DIR the offline key folder(s).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from evota.errors import ConfigError

__all__ = ["ExpiryPolicy", "Home", "HomeSettings", "default_home_path"]

CONFIG_NAME = "evota.toml"
HOME_FORMAT = 1


def default_home_path() -> Path:
    """`$EVOTA_HOME`, else `./evota-home`."""
    return Path(os.environ.get("EVOTA_HOME", "evota-home"))


@dataclasses.dataclass(frozen=True)
class ExpiryPolicy:
    """How long each role's metadata stays valid once signed.

    Offline roles live long (an operator re-signs them on a schedule); online roles are
    short so a frozen or replayed repository is noticed within hours.
    """

    image_root: dt.timedelta = dt.timedelta(days=365)
    image_targets: dt.timedelta = dt.timedelta(days=365)
    image_snapshot: dt.timedelta = dt.timedelta(days=7)
    image_timestamp: dt.timedelta = dt.timedelta(days=1)
    director_root: dt.timedelta = dt.timedelta(days=365)
    director_online: dt.timedelta = dt.timedelta(days=1)

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name).total_seconds() / 3600 for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpiryPolicy:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown expiry setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, dt.timedelta] = {}
        for name, hours in data.items():
            if not isinstance(hours, int | float) or hours <= 0:
                raise ConfigError(f"expiry.{name} must be a positive number of hours")
            values[name] = dt.timedelta(hours=float(hours))
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class HomeSettings:
    """What `evota.toml` holds."""

    offline_dir: str = "offline"
    database_url: str = ""
    server_host: str = "127.0.0.1"
    server_port: int = 8700
    # The http(s) base chargers download firmware from, if not the address they reach the CSMS
    # at (behind a proxy, say); empty: each charger's own websocket address.
    public_url: str = ""
    expiry: ExpiryPolicy = dataclasses.field(default_factory=ExpiryPolicy)

    def to_toml(self) -> str:
        doc = {
            "home": {"format": HOME_FORMAT},
            "keys": {"offline_dir": self.offline_dir},
            "database": {"url": self.database_url},
            "server": {"host": self.server_host, "port": self.server_port, "public_url": self.public_url},
            "expiry_hours": self.expiry.to_dict(),
        }
        return tomli_w.dumps(doc)

    @classmethod
    def from_toml(cls, text: str) -> HomeSettings:
        try:
            doc = tomllib.loads(text)
            if doc.get("home", {}).get("format") != HOME_FORMAT:
                raise ConfigError(f"{CONFIG_NAME}: unsupported home format (expected {HOME_FORMAT})")
            return cls(
                offline_dir=str(doc["keys"]["offline_dir"]),
                database_url=str(doc.get("database", {}).get("url", "")),
                server_host=str(doc["server"]["host"]),
                server_port=int(doc["server"]["port"]),
                public_url=str(doc["server"].get("public_url", "")),
                expiry=ExpiryPolicy.from_dict(doc.get("expiry_hours", {})),
            )
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{CONFIG_NAME} is malformed: {e}") from e


class Home:
    """Paths and settings of one deployment home; constructing it reads nothing."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser().resolve()

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def online_keys(self) -> Path:
        return self.path / "keys"

    @property
    def image_repo(self) -> Path:
        return self.path / "repo" / "image"

    @property
    def director_repo(self) -> Path:
        return self.path / "repo" / "director"

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    def exists(self) -> bool:
        return self.config_file.is_file()

    def settings(self) -> HomeSettings:
        """Read `evota.toml`; a home that was never initialised is a clear error."""
        if not self.exists():
            raise ConfigError(
                f"{self.path} is not an evota home (no {CONFIG_NAME}); "
                f"create one with: evota init --home {self.path}"
            )
        return HomeSettings.from_toml(self.config_file.read_text(encoding="utf-8"))

    def offline_key_dirs(self) -> list[Path]:
        """The offline key folders: EVOTA_OFFLINE_DIR, else the setting (relative to home).

        EVOTA_OFFLINE_DIR may list several folders separated by ':' (one per key custodian's
        medium), so the k keys of a k-of-n root can be brought together for one signing
        without copying them into one place. New offline keys are written to the first.
        """
        override = os.environ.get("EVOTA_OFFLINE_DIR")
        if override:
            folders = [Path(f) for f in override.split(os.pathsep) if f]
        else:
            folders = [Path(self.settings().offline_dir)]
        return [f if f.is_absolute() else self.path / f for f in folders]

    def database_url(self) -> str:
        """EVOTA_DATABASE_URL, else the setting, else SQLite inside the home."""
        return (
            os.environ.get("EVOTA_DATABASE_URL")
            or self.settings().database_url
            or f"sqlite:///{self.path / 'evota.db'}"
        )
