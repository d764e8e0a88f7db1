"""warehouse/alerts.py: bands on constructed histories whose answer is known, and the figures read from a real lake."""

from __future__ import annotations

import datetime as dt

import pytest

from sensevoice_pipeline.warehouse import alerts
from sensevoice_pipeline.warehouse.alerts import AlertRules, judge

DAY = dt.date(2026, 3, 15)


def history(figure: str, group: str, values: list[float], today: float, support: int = 100) -> list[tuple]:
    """Rows for the days before DAY (oldest first) and DAY itself."""
    days = [DAY - dt.timedelta(days=len(values) - i) for i in range(len(values))]
    return [(d, figure, group, v, support) for d, v in zip(days, values)] + [
        (DAY, figure, group, today, support)
    ]


def test_a_value_inside_the_floor_band_is_quiet_and_one_outside_is_a_breach():
    flat = [0.10] * 7  # std 0: the band is the 5-point floor
    assert judge(history(alerts.ANGRY_SHARE, "language en", flat, 0.149), DAY) == []
    (breach,) = judge(history(alerts.ANGRY_SHARE, "language en", flat, 0.151), DAY)
    assert (breach.figure, breach.group, breach.value, breach.mean) == (
        alerts.ANGRY_SHARE,
        "language en",
        0.151,
        0.1,
    )
    assert (round(breach.low, 6), round(breach.high, 6), breach.history) == (0.05, 0.15, 7)
    assert breach.first == DAY - dt.timedelta(days=7) and breach.last == DAY - dt.timedelta(days=1)


def test_the_band_widens_with_the_baselines_spread():
    noisy = [0.05, 0.15] * 4  # mean 0.10, population std 0.05: 3 sigmas = 0.15
    assert judge(history(alerts.ANGRY_SHARE, "queue billing", noisy, 0.24), DAY) == []
    assert len(judge(history(alerts.ANGRY_SHARE, "queue billing", noisy, 0.26), DAY)) == 1
    assert (
        len(judge(history(alerts.ANGRY_SHARE, "queue billing", noisy, 0.26), DAY, AlertRules(sigmas=4))) == 0
    )


def test_volume_is_judged_relative_to_its_mean_and_low_values_too():
    assert judge(history(alerts.RECORDINGS, "all", [1000] * 6, 1400), DAY) == []
    (drop,) = judge(history(alerts.RECORDINGS, "all", [1000] * 6, 400), DAY)  # half the mean: 500 to 1500
    assert (drop.low, drop.high) == (500.0, 1500.0)
    assert "recordings on 2026-03-15: 400, outside its band 500 to 1,500" in drop.line()


@pytest.mark.parametrize(
    "rows",
    [
        history(alerts.ANGRY_SHARE, "language en", [0.1] * 4, 0.9),  # 4 days of history: too few
        history(alerts.ANGRY_SHARE, "language en", [0.1] * 7, 0.9, support=5),  # 5 segments that day: too few
        history(alerts.ANGRY_SHARE, "language en", [0.1] * 7, 0.9)[:-1],  # the day itself has no such figure
    ],
)
def test_nothing_is_judged_without_enough_history_or_support(rows):
    assert judge(rows, DAY) == []


def test_days_outside_the_baseline_window_do_not_count():
    old = [(DAY - dt.timedelta(days=30 + i), alerts.ANGRY_SHARE, "all", 0.9, 100) for i in range(10)]
    recent = history(alerts.ANGRY_SHARE, "all", [0.1] * 5, 0.12)
    assert judge(old + recent, DAY) == []  # the old 0.9s would have made 0.12 a breach


def test_one_message_names_every_breach_with_its_day_and_baseline():
    rows = history(alerts.ANGRY_SHARE, "language en", [0.1] * 7, 0.5) + history(
        alerts.FAILED_SHARE, "all", [0.0] * 7, 0.3
    )
    subject, text = alerts.message(judge(rows, DAY))
    assert (
        subject
        == "SenseVoice 2026-03-15: angry share (language en), failed-file share outside the usual band"
    )
    assert "angry share (language en) on 2026-03-15: 50.0%, outside its band 5.0% to 15.0%" in text
    assert "(baseline mean 10.0% over 7 days, 2026-03-08 to 2026-03-14)" in text
