"""The primary's image store: verified images kept by SHA-256 in the state folder.

Downloads land in `<sha256>.part` and are renamed to `<sha256>` only after their length and
every hash match the verified target, so a complete name always means a verified file. The
store keeps the images both slots of every ECU hold (factory images included): the backup
a single-bank ECU would be reflashed from, and the parameter schemas a user's rollback needs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from evota.agent.secondary import ImageRef
from evota.fsutil import atomic_write

__all__ = ["ImageStore"]


class ImageStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, ref: ImageRef) -> Path:
        return self.folder / ref.sha256

    def part_path(self, ref: ImageRef) -> Path:
        return self.folder / f"{ref.sha256}.part"

    def has(self, ref: ImageRef) -> bool:
        try:
            return self.path(ref).stat().st_size == ref.length
        except FileNotFoundError:
            return False

    def put(self, ref: ImageRef, data: bytes) -> None:
        """Store bytes already in hand (a factory image); refused unless they match `ref`."""
        if len(data) != ref.length or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise ValueError(f"{ref.path}: the bytes do not match the image reference")
        atomic_write(self.path(ref), data)

    def complete(self, ref: ImageRef) -> None:
        """A verified `.part` becomes the image (rename, then fsync of the folder)."""
        os.replace(self.part_path(ref), self.path(ref))
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def prune(self, keep: Iterable[ImageRef]) -> int:
        """Delete every complete image not in `keep` (partial downloads stay); returns how many."""
        wanted = {r.sha256 for r in keep}
        removed = 0
        for path in self.folder.iterdir():
            if "." not in path.name and path.name not in wanted:
                path.unlink()
                removed += 1
        return removed
