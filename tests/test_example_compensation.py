"""Example 06 (compensation and branch-scoped failure) runs and does what it says."""

from __future__ import annotations

import pytest

from _support import load_example


def test_the_trip_rebooks_the_flight_on_its_branch_and_pays(
    capsys: pytest.CaptureFixture[str],
) -> None:
    paid = load_example("06_compensation").main()["valid"]
    assert paid.success and not paid.compensated
    assert paid.trace == ["quote", "hotel", "flight", "tell_partner", "backup_flight", "pay"]
    assert paid.state.workflow["paid"] == 540
    assert [w.node for w in paid.warnings] == ["tell_partner"]
    assert "warning from tell_partner" in capsys.readouterr().out


def test_a_declined_card_cancels_the_bookings_most_recent_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    declined = load_example("06_compensation").main()["declined"]
    assert declined.status == "failed" and declined.compensated
    assert declined.error is not None and declined.error.message == "card declined"
    undone = [r.node for r in declined.audit_trail if r.kind == "compensation"]
    assert undone == ["backup_flight", "hotel"]
    assert declined.state.workflow["cancelled"] == {
        "backup_flight": "backup_flight:backup-air",
        "hotel": "hotel:grand-hotel",
    }
    out = capsys.readouterr().out
    assert out.index("cancel backup_flight") < out.index("cancel hotel")


def test_the_pictures_show_what_each_scope_ran() -> None:
    pictures = load_example("06_compensation").pictures()
    assert set(pictures) == {"run", "branch"}
    assert "HANDLER_EXCEPTION (branch)" in pictures["branch"]
    assert "(branch)" not in pictures["run"]
    for svg in pictures.values():
        assert svg.lstrip().startswith("<svg") or svg.lstrip().startswith("<?xml")
