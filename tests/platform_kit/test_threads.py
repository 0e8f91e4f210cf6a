import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from platform_kit.threads import ThreadLane


def test_a_lane_runs_no_more_calls_at_once_than_its_size_and_in_the_order_they_came():
    lane = ThreadLane(2)
    lock = threading.Lock()
    running, most, started = [0], [0], []

    def work(number: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            started.append(number)
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return number * 10

    async def burst() -> list[int]:
        calls = []
        for number in range(10):
            calls.append(asyncio.create_task(lane.run(work, number)))
            await asyncio.sleep(0)  # each call asks for its thread before the next
        return list(await asyncio.gather(*calls))

    with ThreadPoolExecutor(1) as own_loop:  # an event loop of its own, whatever else runs
        answers = own_loop.submit(asyncio.run, burst()).result(timeout=60)
    assert answers == [n * 10 for n in range(10)]
    assert most[0] == 2
    # first come first served: two calls let in together may start in either order
    assert all(abs(place - number) < 2 for place, number in enumerate(started)), started

