"""Point 4 of the foundation issue: the image repository is a standard TUF repository.

python-tuf's own `ngclient.Updater` (not evota's adapter) gets nothing but the root printed
by `evota repo trust-root` and the URLs of a real `evota serve` process on loopback, and
downloads and verifies a published image. With one byte of the stored image changed, the
same download must fail verification. Everything on the server side goes through the CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.api.exceptions import LengthOrHashMismatchError
from tuf.ngclient import Updater

pytestmark = pytest.mark.integration


def evota(*args: str, home: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "evota", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served_home(tmp_path: Path) -> Iterator[tuple[Path, str, dict[str, object]]]:
    home = tmp_path / "home"
    evota("init", "--root-threshold", "2", "--root-keys", "3", home=home)
    image = tmp_path / "bms-2.4.0.bin"
    image.write_bytes(os.urandom(200_000))
    published = json.loads(
        evota(
            "release",
            "add",
            str(image),
            "--ecu-type",
            "bms",
            "--hardware-id",
            "bms-gen2",
            "--version",
            "2.4.0",
            "--requires",
            "vcms>=3.1",
            "--json",
            home=home,
        )
    )
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "evota",
            "serve",
            "--home",
            str(home),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"evota serve did not start: {(tmp_path / 'serve.log').read_text()}"
                    ) from None
                time.sleep(0.1)
        yield home, url, published
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def updater(tmp_path: Path, url: str, root: bytes, name: str) -> Updater:
    (tmp_path / name).mkdir()
    return Updater(
        metadata_dir=str(tmp_path / name),
        metadata_base_url=f"{url}/repo/image/metadata/",
        target_base_url=f"{url}/repo/image/targets/",
        target_dir=str(tmp_path / f"{name}-targets"),
        bootstrap=root,
    )


def test_python_tuf_ngclient_downloads_and_verifies_a_published_image(
    served_home: tuple[Path, str, dict[str, object]], tmp_path: Path
) -> None:
    home, url, published = served_home
    root = evota("repo", "trust-root", home=home).encode()
    client = updater(tmp_path, url, root, "client")
    info = client.get_targetinfo(str(published["target"]))
    assert info is not None
    assert info.length == published["length"]
    assert info.hashes["sha256"] == published["sha256"]
    assert info.custom["evota"]["version"] == "2.4.0"
    path = client.download_target(info)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == published["sha256"]

    # One byte of the stored image changed: the same download must fail verification.
    folder = home / "repo" / "image" / "targets" / "bms" / "2.4.0"
    for stored in folder.glob("*.bms-2.4.0.bin"):
        data = bytearray(stored.read_bytes())
        data[12345] ^= 0x01
        stored.unlink()
        stored.write_bytes(bytes(data))
    fresh = updater(tmp_path, url, root, "client2")
    info = fresh.get_targetinfo(str(published["target"]))
    assert info is not None
    with pytest.raises(LengthOrHashMismatchError):
        fresh.download_target(info)
