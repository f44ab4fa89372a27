"""Worker threads for streaming inference: prefetching, ordered parallel maps, stage clocks.

The video loop (:mod:`posetransfer.infer.motion_stream`) keeps the CPU cores busy with threads:
decoding runs ahead of detection (:func:`prefetch`), several batches go through the networks at
once (:func:`ordered_map`) while the caller encodes the finished ones. Torch and ONNX Runtime
release the GIL inside their kernels, PyAV inside its decoder and encoder, so threads overlap.

Both helpers keep their queues bounded (memory stays flat however long the video), deliver
items in input order, re-raise a worker's exception in the consumer, and stop their threads
when the consumer stops early (an exception, ``break`` or ``close()``).

:class:`StageClock` adds up the wall time and the CPU time of the calling thread
(``time.thread_time``) per named stage, from any thread.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar, cast

__all__ = ["StageClock", "ordered_futures", "ordered_map", "prefetch"]

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


class StageClock:
    """Wall and CPU seconds per named stage, added from any thread.

    CPU time is the measuring thread's own (``time.thread_time``): in a pipeline of threads each
    stage's CPU cost is counted where it is spent. Work that a library hands to its own thread
    pool (torch or ONNX Runtime with more than one intra-op thread) is not seen; the process's
    total (``time.process_time``) is.
    """

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name``."""
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - wall, time.thread_time() - cpu)

    def add(self, name: str, wall: float, cpu: float) -> None:
        """Add ``wall`` and ``cpu`` seconds to stage ``name``."""
        with self._lock:
            self.wall[name] = self.wall.get(name, 0.0) + wall
            self.cpu[name] = self.cpu.get(name, 0.0) + cpu


def prefetch(items: Iterable[T], depth: int = 4, name: str = "prefetch") -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead of the consumer.

    Args:
        items: Any iterable (e.g. decoded video frames); it is consumed in the worker thread.
        depth: Most items held between the worker and the consumer (>= 1).
        name: The worker thread's name (for debuggers and logs).

    Yields:
        The items of ``items``, in order.

    Raises:
        Exception: Whatever iterating ``items`` raised, when the consumer reaches that point.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    box: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as error:  # handed to the consumer
            put((None, error))
            return
        put(_DONE)

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while True:
            got = box.get()
            if got is _DONE:
                return
            item, error = cast(tuple[T, BaseException | None], got)
            if error is not None:
                raise error
            yield item
    finally:
        stop.set()
        thread.join()


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int = 2, depth: int | None = None
) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` threads, results in input order.

    At most ``depth`` calls are submitted ahead of the consumer, so a slow consumer (the video
    encoder) holds back the workers instead of piling up results. With ``workers == 1`` one
    call still runs while the consumer handles the previous result.

    Args:
        fn: The work per item; called in worker threads.
        items: The inputs, consumed in the calling thread as results are taken.
        workers: Worker threads (>= 1).
        depth: Most calls in flight (default ``2 * workers``; at least ``workers``).

    Yields:
        ``fn(item)`` for each item, in order.

    Raises:
        Exception: The first exception of ``fn`` (in input order), re-raised in the consumer;
            calls not yet started are cancelled and the threads joined.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    depth = max(workers, depth if depth is not None else 2 * workers)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="posetransfer-worker")
    try:
        yield from ordered_futures(lambda _, item: executor.submit(fn, item), items, depth)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def ordered_futures(
    submit: Callable[[int, T], Future[R]], items: Iterable[T], depth: int
) -> Iterator[R]:
    """The results of ``submit(index, item)`` for each item, in input order.

    At most ``depth`` futures are pending; those not taken when the consumer stops (or fails)
    are cancelled. The caller owns the executors ``submit`` uses.

    Args:
        submit: Starts the work of item ``index`` and returns its future.
        items: The inputs, consumed in the calling thread as results are taken.
        depth: Most futures pending (>= 1).

    Yields:
        Each future's result, in input order (its exception is raised there).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    pending: deque[Future[R]] = deque()
    try:
        for index, item in enumerate(items):
            pending.append(submit(index, item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
