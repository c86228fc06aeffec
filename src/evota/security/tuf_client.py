"""python-tuf's ngclient, judged by evota's clock and speaking evota's error types.

ngclient 7 has no public seam for two things Uptane needs, so they are done here, in one
place, against the pinned major version (tests fail loudly if it changes):

1. Reference time. `TrustedMetadataSet` reads the host clock (`datetime.now`) when it is built; Uptane
   requires expiry to be judged against the ECU's secure (attested, monotonic) time. We set
   its `reference_time` right after construction, before any expiry check runs.
2. The verified top-level targets. `Updater` answers "info for path X" but cannot list the
   targets it verified; the director's list *is* the instruction, so we read it from the
   trusted set after `refresh()`.

Errors: python-tuf raises `BadVersionNumberError` both for rollback (a version lower than
trusted) and for mix-and-match (a file whose version is not the one the snapshot or
timestamp names); `tuf_errors` tells them apart by the fixed wording of
`TrustedMetadataSet`, because the distinction is what an operator must see.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Targets
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from evota.security.errors import (
    EndlessDataError,
    FreezeError,
    MetadataRollbackError,
    MixAndMatchError,
    RepositoryUnavailableError,
    SignatureError,
    TamperedImageError,
    VerificationError,
)

__all__ = ["ClockedUpdater", "staged_cache", "tuf_errors"]

# TrustedMetadataSet's wording when a file is not the version its parent names:
# "Expected snapshot version 3, got 2" and "Expected targets v3, got v2."
_MISMATCH = re.compile(r"^Expected (?:snapshot version|\S+ v\d)")


class ClockedUpdater(Updater):
    """An ngclient `Updater` whose expiry checks use `reference_time`, not the host clock."""

    def __init__(
        self,
        *,
        metadata_dir: Path,
        metadata_url: str,
        trusted_root: bytes,
        reference_time: dt.datetime,
        targets_url: str | None = None,
        fetcher: FetcherInterface | None = None,
        config: UpdaterConfig | None = None,
    ) -> None:
        metadata_dir.mkdir(parents=True, exist_ok=True)
        with tuf_errors("metadata"):
            super().__init__(
                str(metadata_dir),
                metadata_url,
                target_dir=None,
                target_base_url=targets_url,
                fetcher=fetcher,
                config=config,
                bootstrap=trusted_root,
            )
        self._trusted_set.reference_time = reference_time

    def trusted_targets(self) -> Targets:
        """The top-level targets verified by `refresh()` (RuntimeError before it)."""
        try:
            return self._trusted_set.targets
        except KeyError:
            raise RuntimeError("call refresh() before trusted_targets()") from None


@contextlib.contextmanager
def tuf_errors(phase: Literal["metadata", "target"]) -> Iterator[None]:
    """Translate python-tuf exceptions into evota security errors (most specific first)."""
    try:
        yield
    except tuf_exc.UnsignedMetadataError as e:
        raise SignatureError(f"signature check failed: {e}") from e
    except tuf_exc.ExpiredMetadataError as e:
        raise FreezeError(f"expired at the vehicle's trusted time: {e}") from e
    except tuf_exc.BadVersionNumberError as e:
        if _MISMATCH.match(str(e)):
            raise MixAndMatchError(f"metadata does not match its snapshot: {e}") from e
        raise MetadataRollbackError(f"metadata rollback refused: {e}") from e
    except tuf_exc.LengthOrHashMismatchError as e:
        if phase == "target":
            raise TamperedImageError(f"image does not match its signed length and hashes: {e}") from e
        raise MixAndMatchError(f"metadata does not match the hashes its parent names: {e}") from e
    except tuf_exc.DownloadLengthMismatchError as e:
        raise EndlessDataError(f"refused: {e}") from e
    except tuf_exc.RepositoryError as e:
        raise VerificationError(f"repository metadata refused: {e}") from e
    except tuf_exc.DownloadError as e:
        raise RepositoryUnavailableError(f"download failed: {e!r}") from e


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


@contextlib.contextmanager
def staged_cache(cache: Path) -> Iterator[Path]:
    """A copy of a client metadata cache, put in the cache's place only if the block succeeds.

    ngclient persists each file as soon as it verifies it; a caller whose own checks come
    after (Uptane's director checks) must not keep metadata those checks refuse. The swap is
    two renames; a cut between them is repaired the next time (the previous cache returns).

    The copy is made of hard links: ngclient never writes a cached file in place (it writes a
    temporary file and renames it over the old one), so a link shares the old bytes until the
    staged side replaces them, and staging costs no data copy on every check-in.
    """
    staging = cache.with_name(f".{cache.name}.staging")
    previous = cache.with_name(f".{cache.name}.previous")
    if not cache.exists() and previous.exists():
        previous.rename(cache)  # a commit was cut between its two renames
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(previous, ignore_errors=True)
    if cache.exists():
        shutil.copytree(cache, staging, symlinks=True, copy_function=_link_or_copy)
    else:
        staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if cache.exists():
        cache.rename(previous)
    staging.rename(cache)
    shutil.rmtree(previous, ignore_errors=True)
