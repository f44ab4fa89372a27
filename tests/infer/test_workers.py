"""Tests for the worker-thread helpers of the video loop (posetransfer.infer.workers)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from posetransfer.infer.workers import StageClock, ordered_futures, ordered_map, prefetch


def test_prefetch_yields_every_item_in_order_from_another_thread() -> None:
    threads = []

    def items() -> Iterator[int]:
        for i in range(50):
            threads.append(threading.current_thread().name)
            yield i

    assert list(prefetch(items(), depth=3, name="decode")) == list(range(50))
    assert set(threads) == {"decode"}


def test_prefetch_reraises_the_producers_error_after_the_good_items() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("frame 3: broken")

    got = []
    with pytest.raises(OSError, match="frame 3: broken"):
        for item in prefetch(items(), depth=1):
            got.append(item)
    assert got == [1, 2]


def test_prefetch_stops_its_thread_when_the_consumer_stops_early() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(10_000):
            produced.append(i)
            yield i

    before = threading.active_count()
    stream = prefetch(items(), depth=2)
    assert next(stream) == 0
    stream.close()  # joins the worker
    assert threading.active_count() == before
    assert len(produced) <= 5  # bounded: it never ran far ahead


def test_prefetch_checks_depth() -> None:
    with pytest.raises(ValueError, match="depth must be >= 1"):
        list(prefetch([1], depth=0))


def test_ordered_map_keeps_the_order_whatever_the_finishing_order() -> None:
    rng = random.Random(0)
    delays = [rng.uniform(0, 0.01) for _ in range(30)]

    def slow_square(i: int) -> int:
        time.sleep(delays[i])
        return i * i

    assert list(ordered_map(slow_square, range(30), workers=3)) == [i * i for i in range(30)]


def test_ordered_map_runs_calls_at_once_and_bounds_those_in_flight() -> None:
    lock = threading.Lock()
    running, most = 0, 0
    names = set()

    def work(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            names.add(threading.current_thread().name)
        time.sleep(0.02)
        with lock:
            running -= 1
        return i

    submitted = []

    def items() -> Iterator[int]:
        for i in range(12):
            submitted.append(i)
            yield i

    consumed = []
    for result in ordered_map(work, items(), workers=2, depth=3):
        consumed.append(result)
        # never more than `depth` calls ahead of the consumer
        assert len(submitted) - len(consumed) <= 3
    assert consumed == list(range(12))
    assert most == 2 and len(names) == 2


def test_ordered_map_reraises_the_first_error_and_cancels_the_rest() -> None:
    calls = []

    def work(i: int) -> int:
        calls.append(i)
        if i == 3:
            raise RuntimeError("batch 3 failed")
        time.sleep(0.005)
        return i

    got = []
    with pytest.raises(RuntimeError, match="batch 3 failed"):
        for result in ordered_map(work, range(100), workers=2, depth=4):
            got.append(result)
    assert got == [0, 1, 2]
    assert len(calls) < 20  # the remaining items were never submitted or were cancelled
    with pytest.raises(ValueError, match="workers must be >= 1"):
        list(ordered_map(work, [1], workers=0))


def test_stage_clock_adds_wall_and_cpu_time_per_stage_from_threads() -> None:
    clock = StageClock()

    def spin() -> None:
        with clock.stage("busy"):
            end = time.thread_time() + 0.03
            while time.thread_time() < end:
                pass
        with clock.stage("idle"):
            time.sleep(0.03)

    threads = [threading.Thread(target=spin) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.cpu["busy"] >= 0.06 and clock.wall["busy"] >= 0.06
    assert clock.wall["idle"] >= 0.06 and clock.cpu["idle"] < 0.03


def test_ordered_futures_keeps_input_order_over_executors_and_bounds_what_is_pending() -> None:
    started: list[int] = []

    def slow(index: int) -> int:
        time.sleep(random.Random(index).uniform(0.0, 0.01))
        return index * 10

    pools = [ThreadPoolExecutor(1) for _ in range(3)]
    try:

        def submit(index: int, item: int) -> Future[int]:
            started.append(index)
            return pools[index % 3].submit(slow, item)

        taken = []
        for result in ordered_futures(submit, range(12), depth=4):
            taken.append(result)
            assert len(started) - len(taken) <= 3  # at most `depth` pending, one just taken
        assert taken == [i * 10 for i in range(12)]
    finally:
        for pool in pools:
            pool.shutdown()
    with pytest.raises(ValueError, match="depth must be >= 1"):
        list(ordered_futures(submit, [1], depth=0))
