"""The dynamic batcher on its own, without HTTP: real asyncio tasks and a real inference
thread, with plain functions as the model."""

from __future__ import annotations

import asyncio
import threading

import pytest

from photoclass.serving.batching import Batcher, Overloaded


class Recorder:
    """A batch function that doubles its items and remembers each batch it was given."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.release.wait(10)
        self.batches.append(list(items))
        if self.fail_on in items:
            raise ValueError(f"cannot take {self.fail_on}")
        return [2 * i for i in items]


async def ask(batcher: Batcher, item: int) -> int:
    with batcher.admit():
        return await batcher.submit(item)


def test_items_that_arrive_together_share_one_call_in_order() -> None:
    fn = Recorder()

    async def main() -> list[int]:
        async with Batcher(fn, max_batch=4, max_wait=0.2, max_queue=100) as batcher:
            return await asyncio.gather(*(ask(batcher, i) for i in range(10)))

    assert asyncio.run(main()) == [2 * i for i in range(10)]
    assert fn.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_it_waits_only_for_requests_already_on_their_way() -> None:
    fn = Recorder()

    async def main() -> tuple[int, int, int]:
        async with Batcher(fn, max_batch=8, max_wait=30, max_queue=10) as batcher:
            alone = await asyncio.wait_for(ask(batcher, 1), 10)  # not held for the 30 s
            with batcher.admit():  # a second request is in, its photo still being read...
                first = asyncio.create_task(ask(batcher, 2))
                await asyncio.sleep(0.1)
                assert not first.done()  # ...so the first waits for it
                second = await batcher.submit(3)
            return alone, await first, second

    assert asyncio.run(main()) == (2, 4, 6)
    assert fn.batches == [[1], [2, 3]]


def test_what_queues_while_the_model_runs_is_the_next_batch_even_without_waiting() -> None:
    fn = Recorder()

    async def main() -> list[int]:
        async with Batcher(fn, max_batch=16, max_wait=0, max_queue=100) as batcher:
            fn.release.clear()  # the model is busy with the first photo...
            first = asyncio.create_task(ask(batcher, 0))
            await asyncio.sleep(0.05)
            rest = [asyncio.create_task(ask(batcher, i)) for i in range(1, 6)]  # ...while these arrive
            await asyncio.sleep(0.05)
            fn.release.set()
            return await asyncio.gather(first, *rest)

    assert asyncio.run(main()) == [0, 2, 4, 6, 8, 10]
    assert fn.batches == [[0], [1, 2, 3, 4, 5]]


def test_with_two_threads_two_batches_are_computed_at_once() -> None:
    both_in = threading.Barrier(2, timeout=10)  # broken unless two calls are in fn together

    def fn(items: list[int]) -> list[int]:
        both_in.wait()
        return [2 * i for i in items]

    async def main() -> list[int]:
        async with Batcher(fn, max_batch=1, max_wait=0, max_queue=100, threads=2) as batcher:
            return await asyncio.wait_for(asyncio.gather(ask(batcher, 1), ask(batcher, 2)), 20)

    assert asyncio.run(main()) == [2, 4]


def test_a_request_does_not_wait_for_those_in_a_batch_being_computed() -> None:
    fn = Recorder()

    async def main() -> int:
        async with Batcher(fn, max_batch=8, max_wait=30, max_queue=10, threads=2) as batcher:
            fn.release.clear()  # the first batch is being computed...
            first = asyncio.create_task(ask(batcher, 1))
            await asyncio.sleep(0.05)
            # ...and is no reason for a lone request, the only one on its way, to wait 30 s
            # for company: the other thread computes it at once.
            second = asyncio.create_task(ask(batcher, 2))
            await asyncio.sleep(0.05)
            fn.release.set()
            return await asyncio.wait_for(second, 10) + await first

    assert asyncio.run(main()) == 6
    assert sorted(fn.batches) == [[1], [2]]


def test_a_failing_batch_fails_each_of_its_items_and_the_next_batch_runs() -> None:
    fn = Recorder(fail_on=13)

    async def main() -> tuple[list[object], int]:
        async with Batcher(fn, max_batch=4, max_wait=0.2, max_queue=100) as batcher:
            failed = await asyncio.gather(*(ask(batcher, i) for i in (12, 13, 14)), return_exceptions=True)
            return failed, await ask(batcher, 1)

    failed, after = asyncio.run(main())
    assert [type(e) for e in failed] == [ValueError] * 3 and "cannot take 13" in str(failed[0])
    assert after == 2


def test_admission_stops_at_max_queue_and_reopens() -> None:
    async def main() -> None:
        async with Batcher(Recorder(), max_batch=4, max_wait=0, max_queue=2) as batcher:
            with batcher.admit(), batcher.admit():
                assert batcher.admitted == 2
                with pytest.raises(Overloaded) as refused, batcher.admit():
                    pass
                assert refused.value.retry_after >= 1
            assert batcher.admitted == 0
            assert await ask(batcher, 3) == 6

    asyncio.run(main())


def test_closing_answers_everything_queued_then_refuses() -> None:
    fn = Recorder()

    async def main() -> tuple[list[int], Batcher]:
        batcher = Batcher(fn, max_batch=2, max_wait=0, max_queue=100)
        await batcher.__aenter__()
        fn.release.clear()
        tasks = [asyncio.create_task(ask(batcher, i)) for i in range(5)]
        await asyncio.sleep(0.05)  # all five queued or running
        closing = asyncio.create_task(batcher.__aexit__(None, None, None))
        await asyncio.sleep(0.05)
        fn.release.set()
        await closing
        return [t.result() for t in tasks], batcher

    answers, batcher = asyncio.run(main())
    assert answers == [0, 2, 4, 6, 8]
    assert sum(map(len, fn.batches)) == 5
    with pytest.raises(Overloaded), batcher.admit():
        pass
