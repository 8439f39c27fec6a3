"""The check-in scheduling maths: cadences, local time, daylight saving, skips, catch-up."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from coaching_feedback.domain import (
    Cadence,
    CheckInPlan,
    CheckInWindow,
    NoSlotAvailable,
    SkipWindow,
    checkin_id_for,
    fallen_due,
    first_due,
    following_due,
    local_slot,
    plan_origin,
    rescheduled_due,
)
from pydantic import ValidationError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def local(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


def series(plan: CheckInPlan, origin: datetime, count: int) -> list[datetime]:
    due_times = []
    due = origin
    for _ in range(count):
        due = following_due(plan, due)
        due_times.append(due)
    return due_times


# -- cadences ------------------------------------------------------------------------------


def test_weekly_check_ins_fall_on_the_preferred_weekday_and_local_hour():
    plan = CheckInPlan(timezone="Europe/Berlin", weekday=0, hour=9)
    # Planned on Wednesday 2026-06-03: the first check-in is the Monday nearest a week later.
    due_times = series(plan, local(BERLIN, 2026, 6, 3, 15), 3)
    assert [d.astimezone(BERLIN) for d in due_times] == [
        local(BERLIN, 2026, 6, 8, 9), local(BERLIN, 2026, 6, 15, 9),
        local(BERLIN, 2026, 6, 22, 9)]
    assert due_times[0] == utc(2026, 6, 8, 7)  # CEST is UTC+2


def test_biweekly_is_every_second_week():
    plan = CheckInPlan(cadence=Cadence.BIWEEKLY, timezone="UTC", weekday=3, hour=14)
    due_times = series(plan, utc(2026, 1, 1, 14), 3)  # Thursday
    assert due_times == [utc(2026, 1, 15, 14), utc(2026, 1, 29, 14), utc(2026, 2, 12, 14)]


def test_monthly_is_the_first_preferred_weekday_of_each_month_without_drift():
    plan = CheckInPlan(cadence=Cadence.MONTHLY, timezone="UTC", weekday=0, hour=10)
    due_times = series(plan, utc(2026, 1, 5, 10), 4)
    assert [d.date() for d in due_times] == [date(2026, 2, 2), date(2026, 3, 2),
                                             date(2026, 4, 6), date(2026, 5, 4)]
    assert all(d.weekday() == 0 for d in due_times)


def test_monthly_never_comes_sooner_than_two_weeks():
    plan = CheckInPlan(cadence=Cadence.MONTHLY, timezone="UTC", weekday=0, hour=10)
    # Planned on 30 January; the first Monday of February (2 Feb) is too soon.
    assert following_due(plan, utc(2026, 1, 30, 12)).date() == date(2026, 3, 2)


def test_monthly_crosses_the_year():
    plan = CheckInPlan(cadence=Cadence.MONTHLY, timezone="UTC", weekday=4, hour=8)
    assert following_due(plan, utc(2026, 12, 4, 8)).date() == date(2027, 1, 1)


def test_every_n_days_ignores_the_weekday():
    plan = CheckInPlan(cadence=Cadence.EVERY_N_DAYS, every_days=3, timezone="UTC", hour=7)
    assert series(plan, utc(2026, 3, 1, 7), 3) == [utc(2026, 3, 4, 7), utc(2026, 3, 7, 7),
                                                    utc(2026, 3, 10, 7)]


def test_the_next_check_in_is_always_strictly_later():
    for cadence, every in ((Cadence.WEEKLY, None), (Cadence.BIWEEKLY, None),
                           (Cadence.MONTHLY, None), (Cadence.EVERY_N_DAYS, 1)):
        plan = CheckInPlan(cadence=cadence, every_days=every, timezone="Asia/Kolkata",
                           weekday=6, hour=23)
        origin = utc(2026, 2, 27, 18, 30)  # 00:00 local on Saturday the 28th
        due_times = series(plan, origin, 20)
        assert due_times[0] > origin
        assert all(b > a for a, b in itertools.pairwise(due_times))


def test_first_check_in_counts_from_a_future_goal_start():
    plan = CheckInPlan(timezone="UTC", weekday=0, hour=9)
    planned = utc(2026, 5, 1, 12)
    assert plan_origin(plan, planned, date(2026, 6, 1)) == utc(2026, 6, 1)
    assert first_due(plan, planned, date(2026, 6, 1)) == utc(2026, 6, 8, 9)
    # A start in the past counts from when the goal was planned.
    assert first_due(plan, planned, date(2026, 1, 1)) == following_due(plan, planned)


# -- timezones and daylight saving ---------------------------------------------------------


def test_weekly_check_in_keeps_its_local_hour_across_spring_forward():
    plan = CheckInPlan(timezone="Europe/Berlin", weekday=0, hour=9)
    # Berlin moves to summer time on Sunday 2026-03-29.
    before, after = series(plan, local(BERLIN, 2026, 3, 16, 9), 2)
    assert before == utc(2026, 3, 23, 8)   # 09:00 CET = 08:00 UTC
    assert after == utc(2026, 3, 30, 7)    # 09:00 CEST = 07:00 UTC
    assert after - before == timedelta(days=7) - timedelta(hours=1)


def test_weekly_check_in_keeps_its_local_hour_across_fall_back_in_new_york():
    plan = CheckInPlan(timezone="America/New_York", weekday=0, hour=8)
    # New York returns to standard time on Sunday 2026-11-01.
    before, after = series(plan, local(NEW_YORK, 2026, 10, 19, 8), 2)
    assert before.astimezone(NEW_YORK).hour == after.astimezone(NEW_YORK).hour == 8
    assert after - before == timedelta(days=7, hours=1)


def test_an_hour_that_does_not_exist_on_the_switch_day_moves_one_hour_on():
    plan = CheckInPlan(cadence=Cadence.EVERY_N_DAYS, every_days=1, timezone="Europe/Berlin",
                       hour=2)
    # 02:00 does not exist in Berlin on 2026-03-29; the check-in comes at 03:00 CEST.
    due = local_slot(plan, date(2026, 3, 29))
    assert due == utc(2026, 3, 29, 1)
    assert due.astimezone(BERLIN).hour == 3


def test_an_ambiguous_hour_on_the_switch_day_is_taken_once_the_first_time():
    plan = CheckInPlan(cadence=Cadence.EVERY_N_DAYS, every_days=1, timezone="Europe/Berlin",
                       hour=2)
    # 02:00 happens twice in Berlin on 2026-10-25 (CEST, then CET): the first one counts.
    due_times = series(plan, local(BERLIN, 2026, 10, 24, 2), 2)
    assert due_times[0] == utc(2026, 10, 25, 0)
    assert due_times[1] == utc(2026, 10, 26, 1)


def test_the_weekday_is_the_clients_local_weekday():
    # Monday 09:00 in Auckland is still Sunday in UTC.
    plan = CheckInPlan(timezone="Pacific/Auckland", weekday=0, hour=9)
    due = following_due(plan, utc(2026, 7, 1))
    assert due.astimezone(ZoneInfo("Pacific/Auckland")).weekday() == 0
    assert due.weekday() == 6


# -- skip windows ---------------------------------------------------------------------------


def test_a_check_in_in_a_skip_window_is_left_out_and_the_rhythm_carries_on():
    holiday = SkipWindow(start=date(2026, 8, 3), end=date(2026, 8, 16), label="summer")
    plan = CheckInPlan(timezone="UTC", weekday=0, hour=9, skip_windows=(holiday,))
    due_times = series(plan, utc(2026, 7, 27, 9), 2)
    assert [d.date() for d in due_times] == [date(2026, 8, 17), date(2026, 8, 24)]


def test_skip_windows_are_inclusive_local_dates():
    # 23:30 on 31 Dec in New York is already 1 January in UTC; the local date decides.
    plan = CheckInPlan(cadence=Cadence.EVERY_N_DAYS, every_days=1, timezone="America/New_York",
                       hour=23, skip_windows=(SkipWindow(start=date(2026, 12, 31),
                                                         end=date(2026, 12, 31)),))
    due = following_due(plan, local(NEW_YORK, 2026, 12, 30, 23))
    assert due.astimezone(NEW_YORK).date() == date(2027, 1, 1)


def test_skip_windows_covering_everything_are_reported():
    plan = CheckInPlan(cadence=Cadence.EVERY_N_DAYS, every_days=1, timezone="UTC",
                       skip_windows=(SkipWindow(start=date(2026, 1, 1),
                                                end=date(2040, 1, 1)),))
    with pytest.raises(NoSlotAvailable):
        following_due(plan, utc(2026, 1, 1))


def test_invalid_plans_are_refused():
    with pytest.raises(ValidationError, match="timezone"):
        CheckInPlan(timezone="Mars/Olympus_Mons")
    with pytest.raises(ValidationError, match="every_days"):
        CheckInPlan(cadence=Cadence.EVERY_N_DAYS)
    with pytest.raises(ValidationError, match="every_days"):
        CheckInPlan(cadence=Cadence.WEEKLY, every_days=3)
    with pytest.raises(ValidationError, match="end"):
        SkipWindow(start=date(2026, 2, 2), end=date(2026, 2, 1))
    with pytest.raises(ValidationError):
        CheckInPlan(hour=24)


# -- cadence changes mid-period -------------------------------------------------------------


def test_a_cadence_change_moves_the_pending_check_in_without_firing_or_dropping_it():
    weekly = CheckInPlan(timezone="UTC", weekday=0, hour=9)
    last_due = utc(2026, 6, 1, 9)                       # Monday, fired
    pending = following_due(weekly, last_due)           # Monday 8th
    now = utc(2026, 6, 3, 12)                           # changed on Wednesday
    biweekly = weekly.model_copy(update={"cadence": Cadence.BIWEEKLY})
    moved = rescheduled_due(biweekly, last_due, pending, now)
    assert moved == utc(2026, 6, 15, 9)                 # two weeks after the last one
    # Shorter: every two days counts from the last check-in, the first slot after now.
    every_two = CheckInPlan(cadence=Cadence.EVERY_N_DAYS, every_days=2, timezone="UTC", hour=9)
    assert rescheduled_due(every_two, last_due, pending, now) == utc(2026, 6, 5, 9)


def test_a_check_in_already_due_keeps_its_time_when_the_cadence_changes():
    weekly = CheckInPlan(timezone="UTC", weekday=0, hour=9)
    pending = utc(2026, 6, 8, 9)
    now = utc(2026, 6, 8, 9, 30)  # due half an hour ago, not yet published
    monthly = weekly.model_copy(update={"cadence": Cadence.MONTHLY})
    assert rescheduled_due(monthly, utc(2026, 6, 1, 9), pending, now) == pending


def test_a_cadence_change_never_schedules_into_the_past():
    weekly = CheckInPlan(timezone="UTC", weekday=0, hour=9)
    daily = CheckInPlan(cadence=Cadence.EVERY_N_DAYS, every_days=1, timezone="UTC", hour=9)
    now = utc(2026, 6, 5, 10)
    moved = rescheduled_due(daily, utc(2026, 6, 1, 9), utc(2026, 6, 8, 9), now)
    assert moved == utc(2026, 6, 6, 9)
    assert moved > now
    assert weekly.weekday == 0


def test_changing_the_weekday_takes_the_nearest_preferred_day():
    friday = CheckInPlan(timezone="UTC", weekday=4, hour=9)
    # Last check-in Monday 1 June; Friday nearest a week later is 5 June, not 12 June.
    assert rescheduled_due(friday, utc(2026, 6, 1, 9), utc(2026, 6, 8, 9),
                           utc(2026, 6, 2)) == utc(2026, 6, 5, 9)


# -- catch-up after downtime ----------------------------------------------------------------


def test_catch_up_returns_every_period_that_fell_due_and_the_next_one():
    plan = CheckInPlan(timezone="UTC", weekday=0, hour=9)
    due_times, next_due = fallen_due(plan, utc(2026, 6, 1, 9), utc(2026, 6, 20), limit=52)
    assert due_times == [utc(2026, 6, 1, 9), utc(2026, 6, 8, 9), utc(2026, 6, 15, 9)]
    assert next_due == utc(2026, 6, 22, 9)


def test_catch_up_with_nothing_due_returns_nothing():
    plan = CheckInPlan(timezone="UTC", weekday=0, hour=9)
    assert fallen_due(plan, utc(2026, 6, 8, 9), utc(2026, 6, 8, 8), limit=52) == (
        [], utc(2026, 6, 8, 9))


def test_catch_up_is_bounded_and_resumes_where_it_stopped():
    plan = CheckInPlan(cadence=Cadence.EVERY_N_DAYS, every_days=1, timezone="UTC", hour=9)
    now = utc(2026, 1, 31, 12)
    first, resume = fallen_due(plan, utc(2026, 1, 1, 9), now, limit=10)
    rest, next_due = fallen_due(plan, resume, now, limit=100)
    assert len(first) == 10 and resume <= now
    assert first + rest == [utc(2026, 1, day, 9) for day in range(1, 32)]
    assert next_due == utc(2026, 2, 1, 9)


def test_catch_up_respects_skip_windows():
    plan = CheckInPlan(timezone="UTC", weekday=0, hour=9, skip_windows=(
        SkipWindow(start=date(2026, 6, 8), end=date(2026, 6, 8)),))
    due_times, _ = fallen_due(plan, utc(2026, 6, 1, 9), utc(2026, 6, 20), limit=52)
    assert due_times == [utc(2026, 6, 1, 9), utc(2026, 6, 15, 9)]


# -- identities and windows ---------------------------------------------------------------------


def test_check_in_ids_are_stable_per_goal_and_period():
    assert checkin_id_for("acme", "g-1", 3) == checkin_id_for("acme", "g-1", 3)
    assert len({checkin_id_for("acme", "g-1", 3), checkin_id_for("acme", "g-1", 4),
                checkin_id_for("acme", "g-2", 3), checkin_id_for("globex", "g-1", 3)}) == 4


def test_a_check_in_window_tells_late_from_missed():
    window = CheckInWindow.of(utc(2026, 6, 1, 9), timedelta(hours=24), timedelta(hours=72))
    assert not window.is_late(utc(2026, 6, 2, 9))
    assert window.is_late(utc(2026, 6, 2, 9, 1))
    assert window.is_open(utc(2026, 6, 4, 9))
    assert not window.is_open(utc(2026, 6, 4, 9, 1))
    # A grace shorter than the on-time window is stretched to it.
    assert CheckInWindow.of(utc(2026, 6, 1), timedelta(hours=24),
                            timedelta(hours=1)).respond_by == utc(2026, 6, 2)
