"""Progress of a long step, for a person at a terminal and for a log.

On a terminal: a progress bar. Elsewhere (piped, logged, a Prefect worker): one plain line per stage,
and lines on the bootstrap's replicates at a modest rate, so a long run is never silent for minutes
and a log is not flooded. Lines carry no counts of persons: only stage names, step numbers and times.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Fewest seconds between two lines on the bootstrap's replicates (the last one is always written).
REPLICATE_LINE_SECONDS = 15.0


class StageProgress:
    """``with StageProgress("cohort", enabled, total) as bar: ... bar.step("staging.person")``.

    Parameters
    ----------
    label
        What runs (the first word of every line).
    enabled
        False shows nothing at all.
    total
        The number of stages.
    stream
        Where lines go (default: standard error); a bar is drawn only when it is a terminal.
    """

    def __init__(self, label: str, enabled: bool, total: int, stream: TextIO | None = None):
        self.label = label
        self.enabled = enabled
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.bar = None
        self.done = 0
        self.started = time.monotonic()
        self._last_replicate_line = float("-inf")

    def __enter__(self) -> StageProgress:
        if self.enabled and self.stream.isatty():
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task(self.label, total=self.total)
        return self

    def step(self, what: str) -> None:
        """One more stage: ``what`` is the stage that starts (the bar) or was reached (a line)."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, description=what)
            self.bar.advance(self.task)
        elif self.enabled:
            self._line(f"[{self.done}/{self.total}] {what}")

    def replicates(self, done: int, total: int) -> None:
        """Bootstrap replicates done of ``total`` (lines only; at most one per :data:`REPLICATE_LINE_SECONDS`)."""
        if not self.enabled or self.bar is not None:
            return
        now = time.monotonic()
        if done < total and now - self._last_replicate_line < REPLICATE_LINE_SECONDS:
            return
        self._last_replicate_line = now
        self._line(f"bootstrap: {done}/{total} replicates")

    def _line(self, text: str) -> None:
        print(f"{self.label}: {text} ({time.monotonic() - self.started:.0f} s)", file=self.stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
