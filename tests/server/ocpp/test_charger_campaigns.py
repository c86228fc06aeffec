"""Charger campaigns end to end: real websockets, simulated stations running sessions, the
controller ticking inside the server."""

from __future__ import annotations

import pytest

from evota.domain.charger_health import SessionGate
from evota.domain.chargers import Protocol
from evota.server.services.charger_campaigns import ChargerSelector, campaign_members, campaign_summary
from evota.server.services.chargers import get_charger, list_chargers

from .firmware_fixtures import FirmwareCsms, campaign_state, fw_csms, run, running, start_campaign, until

__all__ = ["fw_csms"]


@pytest.mark.parametrize("protocol", [Protocol.V201, Protocol.V16])
def test_a_session_regression_rolls_the_campaign_back(fw_csms: FirmwareCsms, protocol: Protocol) -> None:
    """Three pilot chargers take a firmware that fails every second session; three chargers of
    the same model keep 1.0.0 and are the control. Fisher's test on the sessions halts the
    campaign and sends the pilots back to 1.0.0 through the same update message."""
    csms = fw_csms
    csms.add_chargers(["CP1", "CP2", "CP3"], tags=["pilot"])
    csms.add_chargers(["CP4", "CP5", "CP6"])
    csms.publish("1.0.0")  # the last known good image: a rollback needs it
    csms.publish("2.0.0", regress=True)
    sims = [csms.sim(f"CP{i}", protocol, session_every_s=0.15) for i in range(1, 7)]

    async def go() -> None:
        async with running(*sims):
            await until(lambda: all(c.firmware_version for c in list_chargers(csms.db)), what="six boots")
            start_campaign(
                csms,
                "pilot-2-0-0",
                "2.0.0",
                selector=ChargerSelector(tags=("pilot",)),
                sessions=SessionGate(min_sessions=10, alpha=0.05),
            )
            await until(
                lambda: campaign_state(csms, "pilot-2-0-0") == "rolled_back", timeout=40, what="the rollback"
            )
            await until(
                lambda: {m.status for m in campaign_members(csms.db, "pilot-2-0-0")} == {"rolled_back"},
                what="every pilot back on 1.0.0",
            )

    run(go(), timeout=90)
    summary = campaign_summary(csms.db, "pilot-2-0-0")
    assert summary.halt_reason is not None and summary.halt_reason.startswith("session regression")
    assert summary.validation.updated.failed > 0 and summary.validation.control.failed == 0
    for cpid in ("CP1", "CP2", "CP3"):
        assert get_charger(csms.db, cpid).firmware_version == "1.0.0"
        purposes = [r[1] for r in csms.requests(cpid)]
        assert purposes == ["installed", "installed"]  # the update, then the rollback
    assert all(not csms.requests(c) for c in ("CP4", "CP5", "CP6"))


SITES = ("berlin-north", "berlin-south", "hamburg-port", "munich-east", "cologne-west")


def test_fifty_chargers_on_five_sites_a_bad_firmware_rolls_back_and_a_good_one_completes_its_waves(
    fw_csms: FirmwareCsms,
) -> None:
    csms = fw_csms
    for site in SITES:
        csms.add_chargers([f"{site[:3].upper()}{site[-4:].upper()}-{n}" for n in range(10)], site=site)
    ids = sorted(csms.passwords)
    assert len(ids) == 50
    csms.publish("1.0.0")
    csms.publish("2.0.0", regress=True)
    csms.publish("2.1.0")
    protocols = [Protocol.V201, Protocol.V16]
    sims = [csms.sim(cpid, protocols[i % 2], session_every_s=1.5) for i, cpid in enumerate(ids)]
    waves = (10.0, 50.0, 100.0)
    gate = SessionGate(min_sessions=5, alpha=0.05)

    async def go() -> None:
        async with running(*sims):
            await until(
                lambda: all(c.firmware_version for c in list_chargers(csms.db)), timeout=30, what="50 boots"
            )
            start_campaign(csms, "bad-2-0-0", "2.0.0", waves=waves, sessions=gate)
            await until(
                lambda: campaign_state(csms, "bad-2-0-0") == "rolled_back", timeout=60, what="the halt"
            )
            await until(
                lambda: not any(m.status == "rolling_back" for m in campaign_members(csms.db, "bad-2-0-0")),
                what="the rollbacks",
            )
            start_campaign(csms, "good-2-1-0", "2.1.0", waves=waves, sessions=gate)
            await until(
                lambda: campaign_state(csms, "good-2-1-0") == "completed", timeout=90, what="the waves"
            )

    run(go(), timeout=200)
    bad = campaign_summary(csms.db, "bad-2-0-0")
    assert bad.halt_reason is not None and "session regression" in bad.halt_reason
    assert bad.wave_sizes == (5, 20, 25) and bad.current_wave == 0  # halted in the first wave
    assert bad.statuses == {"pending": 45, "rolled_back": 5}
    good = campaign_summary(csms.db, "good-2-1-0")
    assert good.statuses == {"updated": 50} and good.current_wave == 2
    assert {get_charger(csms.db, c).firmware_version for c in ids} == {"2.1.0"}
    assert {get_charger(csms.db, c).last_good_firmware for c in ids} == {"2.1.0"}
    first_wave = {m.site for m in campaign_members(csms.db, "good-2-1-0") if m.wave == 0}
    assert first_wave == set(SITES)  # the first wave covers every site
    from evota.server.services.audit import list_entries

    actions = [e.action for e in list_entries(csms.db) if e.subject == "charger-campaign:good-2-1-0"]
    assert actions[:3] == ["charger_campaign.create", "charger_campaign.approve", "charger_campaign.start"]
    ticks = [e.details for e in list_entries(csms.db) if e.subject == "charger-campaign:good-2-1-0"][3:]
    assert [t.get("advanced_to_wave") for t in ticks if "advanced_to_wave" in t] == [2, 3]
    assert ticks[-1].get("completed") is True
