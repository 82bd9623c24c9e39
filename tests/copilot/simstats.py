"""Reading the simulator's load counters (`GET /_sim/stats`) in tests."""

import time

from copilot_admin.simulator.server import SimulatorControl


def wait_until(condition, *, patience_seconds: float = 15.0) -> bool:
    """Whether `condition()` became true within the patience (polled; not a speed test)."""
    deadline = time.monotonic() + patience_seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_until_idle(sim: SimulatorControl, *, patience_seconds: float = 15.0) -> dict[str, int]:
    """The simulator's stats once no request is in flight any more (answered or abandoned).

    Waiting is not what is tested: the caller asserts how the requests ended.
    """
    deadline = time.monotonic() + patience_seconds
    while True:
        stats = sim.stats()
        if stats["in_flight"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)
