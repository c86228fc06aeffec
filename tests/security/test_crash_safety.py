"""A publish killed at any write leaves a repository that verifies, and a retry succeeds.

The publish runs in a child process whose `atomic_write` calls `os._exit` at its k-th call:
no exception handler or cleanup runs, as after a power cut. For every k, python-tuf's own
client then verifies the repository as it is on disk (old state or new, never a mix), and
the same publish, retried, goes through.

python-tuf's own client judges expiry by the host's clock, so this module's home is signed at
the host's time (not the fixtures' fixed START, which the calendar has long passed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tuf.ngclient import Updater

from evota.clock import SimClock, SystemClock
from evota.deployment import Deployment, open_home
from evota.server.app import create_app
from evota.server.runner import serve_in_thread
from tests.conftest import Published

CHILD = textwrap.dedent(
    """
    import datetime, os, sys
    from pathlib import Path
    import evota.fsutil, evota.security.tuf_repo as tuf_repo, evota.security.keys as keys
    from evota.clock import SimClock, SystemClock
    from evota.deployment import open_home

    cut_at, calls = int(sys.argv[3]), [0]
    real = evota.fsutil.atomic_write

    def cutting_write(path, data, **kw):
        calls[0] += 1
        if calls[0] == cut_at:
            os._exit(70)  # the power goes off before this write
        real(path, data, **kw)

    tuf_repo.atomic_write = cutting_write
    keys.atomic_write = cutting_write
    dep = open_home(sys.argv[1], SimClock(datetime.datetime.fromisoformat(sys.argv[4])))
    dep.images.add_image(Path(sys.argv[2]), ecu_type="bms", hardware_ids=["bms-gen2"], version="2.5.0")
    print(calls[0])
    """
)


@pytest.fixture
def clock() -> SimClock:
    return SimClock(SystemClock().now())


def publish_in_child(home: Path, image: Path, cut_at: int, now: SimClock) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(home), str(image), str(cut_at), now.now().isoformat()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parents[2],
    )


def verify_with_python_tuf(dep: Deployment, tmp_path: Path, name: str) -> set[str]:
    """Every target path python-tuf's own client can verify, from the root alone."""
    with serve_in_thread(create_app(dep, refresh_interval_s=None)) as url:
        (tmp_path / name).mkdir()
        updater = Updater(
            metadata_dir=str(tmp_path / name),
            metadata_base_url=f"{url}/repo/image/metadata/",
            target_base_url=f"{url}/repo/image/targets/",
            target_dir=str(tmp_path / f"{name}-targets"),
            bootstrap=dep.images.trust_root(),
        )
        updater.refresh()
        found = set()
        for path in ("vcms/3.1.0/vcms-3.1.0.bin", "bms/2.4.0/bms-2.4.0.bin", "bms/2.5.0/bms-2.5.0.bin"):
            info = updater.get_targetinfo(path)
            if info is not None:
                updater.download_target(info)  # bytes verified too
                found.add(path)
        return found


def count_writes(home: Path, image: Path, clock: SimClock) -> int:
    result = publish_in_child(home, image, 10_000, clock)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


@pytest.mark.integration
def test_a_publish_cut_at_any_write_leaves_a_verifiable_repository(
    dep: Deployment, published: Published, tmp_path: Path, clock: SimClock
) -> None:
    image = tmp_path / "bms-2.5.0.bin"
    image.write_bytes(b"\x42" * 3000)
    before = {"vcms/3.1.0/vcms-3.1.0.bin", "bms/2.4.0/bms-2.4.0.bin"}
    # How many durable writes a publish makes, measured on a copy of the home.
    probe = tmp_path / "probe-home"
    shutil.copytree(dep.home.path, probe)
    writes = count_writes(probe, image, clock)
    assert writes >= 3  # targets, snapshot, timestamp at least

    for cut_at in range(1, writes + 1):
        home = tmp_path / f"home-{cut_at}"
        shutil.copytree(dep.home.path, home)
        result = publish_in_child(home, image, cut_at, clock)
        assert result.returncode == 70, result.stderr
        after_cut = open_home(home, clock)
        assert verify_with_python_tuf(after_cut, tmp_path, f"cut-{cut_at}") == before
        retried = publish_in_child(home, image, 10_000, clock)
        assert retried.returncode == 0, f"retry after a cut at write {cut_at}: {retried.stderr}"
        assert verify_with_python_tuf(open_home(home, clock), tmp_path, f"retry-{cut_at}") == {
            *before,
            "bms/2.5.0/bms-2.5.0.bin",
        }
