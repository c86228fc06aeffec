"""What Uptane costs a vehicle and the director, measured against plain TUF in the same run.

    make bench        (or: .venv/bin/python benchmarks/uptane_cycle.py [--vehicles N] [--rounds R])

1. Vehicle cycle over loopback HTTP: evota's full verification (director chain + image chain
   + the match) and the download of a two-image release, against python-tuf's own Updater
   refreshing the image repository and downloading the same two images (the baseline: what a
   plain TUF client pays). Cold (empty metadata cache) and warm (cache from the last cycle).
2. Director: signing one vehicle's assignment (targets, snapshot, timestamp, each signed and
   durably written), against one Ed25519 signature plus one durable write (the baseline).

Machines here are noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from securesystemslib.signer import CryptoSigner
from tuf.ngclient import Updater

from evota.clock import SystemClock
from evota.deployment import Deployment, init_home
from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.fsutil import atomic_write
from evota.security.uptane import EcuState, Primary, RepositoryAccess
from evota.server.app import create_app
from evota.server.runner import serve_in_thread

ECUS = (("GW-1", "gateway", "gw-tcu4"), ("BMS-1", "bms", "bms-gen2"), ("VCMS-1", "vcms", "vcms-gen3"))


def vin(i: int) -> str:
    return f"WVWZZZ1JZ{i:08d}".replace("I", "1").replace("O", "0").replace("Q", "0")


def median_ms(fn: Callable[[int], object], rounds: int) -> float:
    times = []
    for r in range(rounds):
        start = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def setup(base: Path, vehicles: int) -> Deployment:
    dep = init_home(base / "home", SystemClock())
    fw = base / "fw"
    fw.mkdir()
    (fw / "vcms-3.1.0.bin").write_bytes(bytes(range(256)) * 1024)  # 256 KiB
    (fw / "bms-2.4.0.bin").write_bytes(bytes(reversed(range(256))) * 2048)  # 512 KiB
    vcms = dep.images.add_image(fw / "vcms-3.1.0.bin", ecu_type="vcms", hardware_ids=["vcms-gen3"], version="3.1.0")
    bms = dep.images.add_image(
        fw / "bms-2.4.0.bin", ecu_type="bms", hardware_ids=["bms-gen2"], version="2.4.0", requires=["vcms>=3.1"]
    )
    dep.images.add_bundle("energy", [vcms.path, bms.path])
    for i in range(vehicles):
        dep.director.register_vehicle(
            VehicleIdentity(vin(i), "GW-1", tuple(EcuIdentity(s, t, h) for s, t, h in ECUS))
        )
    return dep


def bench_vehicle(dep: Deployment, base: Path, rounds: int) -> None:
    dep.director.assign_release(vin(0), "energy")
    paths = [i.path for i in dep.images.images()]
    with serve_in_thread(create_app(dep, refresh_interval_s=None)) as url:

        def plain_tuf(r: int, cache: str) -> None:
            folder = base / f"tuf-{cache}-{r if cache == 'cold' else 0}"
            folder.mkdir(exist_ok=True)
            updater = Updater(
                metadata_dir=str(folder),
                metadata_base_url=f"{url}/repo/image/metadata/",
                target_base_url=f"{url}/repo/image/targets/",
                target_dir=str(folder / "t"),
                bootstrap=dep.images.trust_root(),
            )
            updater.refresh()
            for path in paths:
                info = updater.get_targetinfo(path)
                assert info is not None
                updater.download_target(info)

        def uptane(r: int, cache: str) -> None:
            folder = base / f"uptane-{cache}-{r if cache == 'cold' else 0}"
            primary = Primary(
                vin=vin(0),
                ecus=[EcuState(s, t, h) for s, t, h in ECUS],
                clock=SystemClock(),
                director=RepositoryAccess(
                    f"{url}/repo/director/{vin(0)}/metadata/", dep.director.trust_root(), folder / "director"
                ),
                image=RepositoryAccess(
                    f"{url}/repo/image/metadata/",
                    dep.images.trust_root(),
                    folder / "image",
                    f"{url}/repo/image/targets/",
                ),
            )
            for image in primary.verify().images:
                primary.download(image, folder / "staging" / image.ecu_serial)

        print("vehicle cycle (verify + download a 2-image release, 768 KiB), median ms:")
        for cache in ("cold", "warm"):
            baseline = median_ms(lambda r, c=cache: plain_tuf(r, c), rounds)  # type: ignore[misc]
            evota = median_ms(lambda r, c=cache: uptane(r, c), rounds)  # type: ignore[misc]
            print(
                f"  {cache:5}  plain TUF (image repo only) {baseline:7.1f}   "
                f"evota Uptane full verification {evota:7.1f}   ratio {evota / baseline:5.2f}x"
            )


def bench_director(dep: Deployment, base: Path, vehicles: int) -> None:
    signer = CryptoSigner.generate_ed25519()
    scratch = base / "scratch"

    def one_signed_write(r: int) -> None:
        atomic_write(scratch / f"{r}.json", signer.sign(b"x" * 600).signature.encode())

    baseline = median_ms(one_signed_write, vehicles)
    start = time.perf_counter()
    for i in range(1, vehicles):
        dep.director.assign_release(vin(i), "energy")
    per_vehicle = (time.perf_counter() - start) * 1000 / max(1, vehicles - 1)
    print(f"director assignment, {vehicles - 1} vehicles:")
    print(
        f"  one sign + durable write {baseline:6.2f} ms   one vehicle's assignment {per_vehicle:6.2f} ms   "
        f"ratio {per_vehicle / baseline:5.1f}x   ({1000 / per_vehicle:.0f} vehicles/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", type=int, default=200, help="vehicles registered and assigned")
    parser.add_argument("--rounds", type=int, default=7, help="repetitions of each vehicle cycle")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evota-bench-") as tmp:
        base = Path(tmp)
        dep = setup(base, args.vehicles)
        bench_vehicle(dep, base, args.rounds)
        bench_director(dep, base, args.vehicles)


if __name__ == "__main__":
    main()
