"""GcPolicy (ryu_dove/engine/gc_policy.py): the heap frozen after every batch, swept when idle or,
under load, once in a long while."""

from __future__ import annotations

import gc

from ryu_dove.engine.gc_policy import GcPolicy


class FakeGc:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def collect(self) -> int:
        self.calls.append("collect")
        return 0

    def get_freeze_count(self) -> int:
        return 1000


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def policy() -> tuple[GcPolicy, FakeGc, Clock]:
    fake, clock = FakeGc(), Clock()
    return GcPolicy(clock, fake, sweep_every_s=600, sweep_max_s=3600), fake, clock


def test_every_batch_freezes_what_it_built() -> None:
    p, fake, _ = policy()
    p.after_batch(5)
    p.after_batch(0)  # a timer batch may have programmed every switch
    assert fake.calls == ["freeze", "freeze"] and p.sweeps == 0


def test_sweeps_when_idle_and_not_more_often_than_asked() -> None:
    p, fake, clock = policy()
    clock.now = 601
    p.after_batch(3)  # busy: no sweep yet
    assert fake.calls == ["freeze"]
    p.after_batch(0)  # idle
    assert fake.calls[1:] == ["unfreeze", "collect", "freeze"] and p.sweeps == 1
    clock.now = 700
    p.after_batch(0)
    assert p.sweeps == 1 and fake.calls[-1] == "freeze"


def test_sweeps_even_under_load_once_in_a_long_while() -> None:
    p, _, clock = policy()
    clock.now = 3599
    p.after_batch(3)
    assert p.sweeps == 0
    clock.now = 3601
    p.after_batch(3)
    assert p.sweeps == 1


def test_a_frozen_heap_is_left_out_of_full_collections() -> None:
    """What the policy relies on: a full collection walks only what was not frozen."""
    ballast = [{"n": [i]} for i in range(200_000)]
    try:
        gc.collect()
        before = gc.get_freeze_count()
        p = GcPolicy()
        p.after_batch(1)
        assert p.frozen >= before + len(ballast)
    finally:
        gc.unfreeze()
