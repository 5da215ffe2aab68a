"""Resident memory and CPU time of the mesh's processes while a phase runs.

Read from /proc/<pid>/status (VmRSS) and /proc/<pid>/stat (utime + stime),
so it needs nothing installed; without /proc there are no figures, and the
report says so. CPU seconds per service say where a phase's time goes even
when other work on the machine moves the wall-clock figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

SAMPLE_EVERY_S = 0.5
# Decimal megabytes, as the target (250 MB) is stated.
MB = 1_000_000
PROC = Path("/proc")


def vm_rss_bytes(status: str) -> int | None:
    """The VmRSS line of a /proc/<pid>/status text, in bytes (None if absent)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            fields = line.split()  # ["VmRSS:", "123456", "kB"]
            if len(fields) != 3 or fields[2].lower() != "kb" or not fields[1].isdigit():
                return None
            return int(fields[1]) * 1024
    return None


def cpu_ticks(stat: str) -> int | None:
    """utime + stime of a /proc/<pid>/stat text, in clock ticks.

    The command name (field 2) is in parentheses and may hold spaces, so the
    fields are counted after its closing parenthesis: utime and stime are
    fields 14 and 15, the 12th and 13th after it.
    """
    _, paren, rest = stat.rpartition(")")
    fields = rest.split()
    if not paren or len(fields) < 13 or not (fields[11].isdigit() and fields[12].isdigit()):
        return None
    return int(fields[11]) + int(fields[12])


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:  # the process is gone, or this is not Linux
        return None


@dataclass(frozen=True)
class ProcessFigure:
    service: str
    start_mb: float
    peak_mb: float
    samples: int
    # CPU seconds (user + system) the process used between start and stop.
    cpu_s: float


class ProcessSampler:
    """Samples every process of `pids` (service -> pid) until stopped."""

    def __init__(
        self, pids: Mapping[str, int], every_s: float = SAMPLE_EVERY_S, proc: Path = PROC
    ) -> None:
        self._pids = dict(pids)
        self._every_s = every_s
        self._proc = proc
        self._tick_s = 1 / os.sysconf("SC_CLK_TCK")
        self._start: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        self._samples: dict[str, int] = {}
        self._cpu_first: dict[str, int] = {}
        self._cpu_last: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        for service, pid in self._pids.items():
            status = _read(self._proc / str(pid) / "status")
            rss = vm_rss_bytes(status) if status else None
            if rss is not None:
                self._start.setdefault(service, rss)
                self._peak[service] = max(self._peak.get(service, 0), rss)
                self._samples[service] = self._samples.get(service, 0) + 1
            stat = _read(self._proc / str(pid) / "stat")
            ticks = cpu_ticks(stat) if stat else None
            if ticks is not None:
                self._cpu_first.setdefault(service, ticks)
                self._cpu_last[service] = ticks

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._every_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="process-sampler")

    async def stop(self) -> list[ProcessFigure]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sample()
        return self.figures()

    def figures(self) -> list[ProcessFigure]:
        return [
            ProcessFigure(
                service,
                self._start[service] / MB,
                self._peak[service] / MB,
                self._samples[service],
                (self._cpu_last.get(service, 0) - self._cpu_first.get(service, 0)) * self._tick_s,
            )
            for service in self._pids
            if service in self._start
        ]


@contextlib.asynccontextmanager
async def sampling(pids: Mapping[str, int]) -> AsyncIterator[ProcessSampler]:
    """Samples `pids` while the block runs; read `figures()` after it."""
    sampler = ProcessSampler(pids)
    sampler.start()
    try:
        yield sampler
    finally:
        await sampler.stop()
