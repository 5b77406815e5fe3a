"""The poll policy, pure: when to ask a server about a job again (``_polling``). No loop, no network.

The scheduler that follows this policy on virtual time is tested in ``test_scheduler.py``.
"""

from __future__ import annotations

import random

import pytest

from sora_nb._polling import PollPolicy, PollState

POLICIES = [PollPolicy(), PollPolicy(floor=0.5, ceiling=10.0, first=1.0), PollPolicy().scaled(0.01)]


def _random_state(rng: random.Random, policy: PollPolicy) -> tuple[PollState, float]:
    submitted = rng.uniform(0, 1e6)
    state = PollState(submitted_at=submitted)
    t, progress = submitted, 0
    for _ in range(rng.randint(0, 8)):
        t += rng.uniform(0, 3 * policy.ceiling)
        progress = rng.choice([None, max(0, min(100, progress + rng.randint(-5, 40)))])
        state.observe(t, progress)
        progress = progress or 0
    return state, t + rng.uniform(0, 2 * policy.ceiling)


@pytest.mark.parametrize("policy", POLICIES)
def test_poll_delay_always_between_floor_and_ceiling(policy: PollPolicy) -> None:
    rng = random.Random(1)
    for _ in range(2000):
        state, now = _random_state(rng, policy)
        hint = rng.choice([None, 0.0, -1.0, rng.uniform(0, 5 * policy.ceiling)])
        delay = policy.next_delay(state, now=now, server_hint=hint)
        assert policy.floor <= delay <= policy.ceiling


@pytest.mark.parametrize("policy", POLICIES)
def test_a_positive_server_hint_wins_over_everything(policy: PollPolicy) -> None:
    rng = random.Random(2)
    for _ in range(1000):
        state, now = _random_state(rng, policy)
        hint = rng.uniform(1e-3, 5 * policy.ceiling)
        expected = min(policy.ceiling, max(policy.floor, hint))
        assert policy.next_delay(state, now=now, server_hint=hint) == expected
        # a zero or negative hint is no advice at all
        assert policy.next_delay(state, now=now, server_hint=0.0) == policy.next_delay(state, now=now)


def test_first_poll_comes_after_first() -> None:
    policy = PollPolicy(floor=1, ceiling=30, first=2)
    assert policy.next_delay(PollState(submitted_at=100.0), now=100.0) == 2
    assert PollPolicy(floor=3, first=2).next_delay(PollState(submitted_at=0.0), now=0.0) == 3  # floor wins


def test_steady_progress_predicts_the_finish_and_aims_just_before_it() -> None:
    rng = random.Random(3)
    policy = PollPolicy(floor=0.1, ceiling=1e9)
    for _ in range(1000):
        duration = rng.uniform(5, 600)
        start = rng.uniform(0, 1e6)
        state = PollState(submitted_at=start)
        times = sorted(rng.uniform(0.05, 0.9) * duration for _ in range(rng.randint(2, 4)))
        if times[-1] - times[0] < 0.2 * duration:
            continue  # a rate from two close integer readings is too rough to hold to a bound
        for t in times:
            state.observe(start + t, max(1, int(100 * t / duration)))  # integer progress, as servers send
        now = start + times[-1] + rng.uniform(0, 0.05 * duration)
        remaining = start + duration - now
        delay = policy.next_delay(state, now=now)
        if remaining <= policy.floor:
            continue
        # Near lead x the true remaining time: integer progress makes the rate approximate.
        assert delay == pytest.approx(policy.lead * remaining, rel=0.25, abs=0.02 * duration)


def test_exact_progress_lands_just_before_the_finish_never_after() -> None:
    policy = PollPolicy(floor=0.01, ceiling=1e9)
    for duration in (10.0, 60.0, 300.0):
        state = PollState(submitted_at=0.0)
        state.observe(0.2 * duration, 20)
        state.observe(0.5 * duration, 50)
        delay = policy.next_delay(state, now=0.5 * duration)
        assert delay == pytest.approx(policy.lead * 0.5 * duration)
        assert delay < 0.5 * duration


def test_without_progress_the_wait_grows_with_time_waited() -> None:
    policy = PollPolicy()
    state = PollState(submitted_at=0.0)
    delays = []
    for now in (1.0, 5.0, 20.0, 60.0, 150.0, 400.0, 4000.0):
        state.observe(now, None)  # nothing known
        delays.append(policy.next_delay(state, now=now))
    assert delays == sorted(delays)  # never shrinks
    assert delays[0] == policy.first and delays[-1] == policy.ceiling
    assert delays[3] == pytest.approx(60.0 * policy.growth)


def test_progress_going_backwards_forgets_the_old_rate() -> None:
    state = PollState(submitted_at=0.0)
    for t, p in ((10, 10), (20, 20), (30, 30), (40, 40), (50, 50)):
        state.observe(t, p)
    assert len(state.observations) == 4  # only the last few are kept
    state.observe(60, 5)  # the job restarted
    assert state.observations == [(60, 5)]
    policy = PollPolicy()
    assert policy.next_delay(state, now=60) == pytest.approx(60 * policy.growth)  # no rate: back to backoff


def test_scaled_policy_scales_times_not_ratios() -> None:
    fast = PollPolicy().scaled(0.01)
    assert (fast.floor, fast.ceiling, fast.first) == pytest.approx((0.01, 0.3, 0.02))
    assert (fast.growth, fast.lead) == (PollPolicy().growth, PollPolicy().lead)
