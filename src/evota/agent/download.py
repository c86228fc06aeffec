"""Resumable, verified downloads into the primary's image store.

A transfer appends to `<sha256>.part` and, when a cut interrupts it, the next attempt asks
only for the bytes after what is on disk (HTTP Range; rauc/rauc#768). Nothing beyond the
verified length is ever written (the endless-data attack), and the file becomes an image
only when its length and *every* hash of the verified target match; otherwise the partial
file is deleted, so the next try starts from zero rather than resuming on bad bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping

from evota.agent.errors import DownloadError
from evota.agent.images import ImageStore
from evota.agent.secondary import ImageRef
from evota.agent.transport import ServerPort

__all__ = ["download"]


def download(
    port: ServerPort,
    store: ImageStore,
    ref: ImageRef,
    hashes: Mapping[str, str],
    *,
    faults: Callable[[str], None] | None = None,
) -> None:
    """Fetch `ref` into `store` unless it is already there (DownloadError on failure)."""
    if store.has(ref):
        return
    part = store.part_path(ref)
    start = part.stat().st_size if part.exists() else 0
    if start > ref.length:
        part.unlink()
        start = 0
    point = faults or (lambda label: None)
    with open(part, "ab") as f:
        received = start
        for chunk in port.fetch_target(ref.path, ref.sha256, start):
            if received + len(chunk) > ref.length:
                f.close()
                part.unlink()
                raise DownloadError(
                    f"{ref.path}: the server sent more than {ref.length} bytes", bad_data=True
                )
            f.write(chunk)
            received += len(chunk)
            point(f"download:{ref.path}:{received}")
        f.flush()
        os.fsync(f.fileno())
    _verify(part.read_bytes(), ref, hashes, lambda: part.unlink())
    store.complete(ref)


def _verify(data: bytes, ref: ImageRef, hashes: Mapping[str, str], discard: Callable[[], None]) -> None:
    if len(data) < ref.length:
        raise DownloadError(f"{ref.path}: transfer stopped at {len(data)} of {ref.length} bytes")
    expected = {"sha256": ref.sha256, **hashes}
    for algo, digest in expected.items():
        try:
            actual = hashlib.new(algo, data).hexdigest()
        except ValueError:
            discard()
            raise DownloadError(f"{ref.path}: unknown hash algorithm {algo}", bad_data=True) from None
        if actual != digest:
            discard()
            raise DownloadError(f"{ref.path}: {algo} does not match the verified target", bad_data=True)
