"""Person-level bootstrap: resample persons (never clones), refit, collect, in parallel.

Each replicate ``r`` draws its resample from its own generator, ``SeedSequence(seed).spawn(R)[r]``,
so the replicates (and therefore the intervals) are the same whatever the number of worker
processes. Numerical libraries run single-threaded inside replicates for the same reason
(multi-threaded BLAS may sum in a different order) and because the parallelism is across
replicates.

Workers are started from a fork server that has already imported the estimators: starting one is
cheap, and it is safe when the caller has threads running (a Prefect task, DuckDB), which a plain
``fork`` of the caller is not. An orchestrator can instead run the chunks of replicates on its own
executor (the Prefect flow uses its task runner, which may be a Dask or Ray cluster) by wrapping
the call in :func:`chunk_mapper`.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

Statistic = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
Chunk = list[tuple[int, np.random.SeedSequence]]
#: ``mapper(run_chunk, chunks) -> results per chunk, in order``; ``run_chunk`` is picklable.
ChunkMapper = Callable[[Callable[[Chunk], list], Sequence[Chunk]], list[list]]

_CHUNK_MAPPER: ContextVar[ChunkMapper | None] = ContextVar("bootstrap_chunk_mapper", default=None)
#: ``report(replicates done, replicates in all)``, called as chunks of replicates finish.
ProgressReport = Callable[[int, int], None]
_PROGRESS: ContextVar[ProgressReport | None] = ContextVar("bootstrap_progress", default=None)


@contextmanager
def progress_reporter(report: ProgressReport) -> Iterator[None]:
    """Call ``report(done, total)`` as the replicates of every bootstrap inside the ``with`` block finish
    (after each chunk run locally; once at the end when an orchestrator runs the chunks)."""
    token = _PROGRESS.set(report)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


@contextmanager
def chunk_mapper(mapper: ChunkMapper) -> Iterator[None]:
    """Run every bootstrap inside the ``with`` block through ``mapper`` instead of a local process pool.

    The replicates and their seeds are the same as with the local pool, so results do not depend
    on where the chunks run.
    """
    token = _CHUNK_MAPPER.set(mapper)
    try:
        yield
    finally:
        _CHUNK_MAPPER.reset(token)


@dataclass
class BootstrapResult:
    """Replicates of every statistic; ``replicates[name]`` has shape (n_replicates, *shape of the estimate).

    ``failed`` counts replicates whose refit raised (their values are NaN); ``first_error`` is
    the message of the first such failure.
    """

    replicates: dict[str, np.ndarray]
    n_replicates: int
    seed: int
    failed: int
    first_error: str | None = None

    def interval(self, name: str, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of ``name`` over the replicates that produced a (finite) value."""
        lo, hi = 50 * (1 - level), 100 - 50 * (1 - level)
        q = nan_percentiles(self.replicates[name], [lo, hi])
        return q[0], q[1]

    def standard_error(self, name: str) -> np.ndarray:
        """Standard deviation of ``name`` over the replicates with a finite value."""
        reps = self.replicates[name]
        ok = np.isfinite(reps)
        k = ok.sum(axis=0)
        mean = np.where(ok, reps, 0).sum(axis=0) / np.maximum(k, 1)
        var = np.where(ok, (reps - mean) ** 2, 0).sum(axis=0) / np.maximum(k - 1, 1)
        return np.where(k > 1, np.sqrt(var), np.nan)

    def log_standard_error(self, name: str) -> np.ndarray:
        """Standard deviation of ``log(name)`` over the replicates where the log is finite: the bootstrap
        standard error of a log ratio from the replicates of the ratio (a replicate with a zero or
        undefined ratio, no events in an arm, is skipped as :meth:`standard_error` skips NaN)."""
        logs = log_ratio(self.replicates[name])
        return BootstrapResult({name: logs}, self.n_replicates, self.seed, self.failed).standard_error(name)


def log_ratio(values) -> np.ndarray:
    """``log(values)`` where a value is a positive ratio, NaN where it is zero, negative or missing (a ratio with
    no events in an arm has no log)."""
    x = np.asarray(values, dtype=float)
    positive = x > 0
    return np.where(positive, np.log(np.where(positive, x, 1.0)), np.nan)


def nan_percentiles(reps: np.ndarray, percentiles) -> np.ndarray:
    """Percentiles along axis 0 ignoring non-finite values (linear interpolation, as np.percentile).

    Vectorised: ``np.nanpercentile`` loops in Python over every column, which is slow for curves
    with hundreds of days.
    """
    reps = np.asarray(reps, dtype=float)
    x = np.where(np.isfinite(reps), reps, np.inf)
    x = np.sort(x, axis=0)
    k = np.isfinite(reps).sum(axis=0)
    out = []
    for pct in percentiles:
        pos = (k - 1) * pct / 100.0
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(k - 1, 0))
        lo = np.clip(lo, 0, None)
        frac = pos - np.floor(pos)
        x_lo = np.take_along_axis(x, lo[None, ...], axis=0)[0]
        x_hi = np.take_along_axis(x, hi[None, ...], axis=0)[0]
        with np.errstate(invalid="ignore"):
            val = x_lo + (x_hi - x_lo) * frac
        out.append(np.where(k > 0, np.where(frac == 0, x_lo, val), np.nan))
    return np.array(out)


def resample(data: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One bootstrap sample of persons: every array indexed by the same draw with replacement."""
    n = len(next(iter(data.values())))
    idx = rng.integers(0, n, size=n)
    return {k: v[idx] for k, v in data.items()}


_WORKER: dict = {}


def _init_worker(statistic: Statistic, data: Mapping[str, np.ndarray]) -> None:
    _WORKER["statistic"] = statistic
    _WORKER["data"] = data
    _WORKER["limits"] = threadpool_limits(limits=1)


def _run_chunk(seeds: list[tuple[int, np.random.SeedSequence]]) -> list[tuple[int, dict | str]]:
    statistic, data = _WORKER["statistic"], _WORKER["data"]
    out: list[tuple[int, dict | str]] = []
    for r, ss in seeds:
        rng = np.random.Generator(np.random.PCG64(ss))
        try:
            out.append((r, statistic(resample(data, rng))))
        except Exception as exc:  # noqa: BLE001 - a replicate that cannot be fitted is recorded as missing
            out.append((r, f"{type(exc).__name__}: {exc}"))
    return out


def run_replicates(statistic: Statistic, data: Mapping[str, np.ndarray], seeds: Chunk) -> list[tuple[int, dict | str]]:
    """Run one chunk of replicates in this process, single-threaded (what each worker or task does)."""
    with threadpool_limits(limits=1):
        _WORKER.update(statistic=statistic, data=data)
        try:
            return _run_chunk(seeds)
        finally:
            _WORKER.clear()


def _context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["ipm_outcomes.estimators"])
        return ctx
    return multiprocessing.get_context("spawn")


def run(
    statistic: Statistic,
    data: Mapping[str, np.ndarray],
    template: Mapping[str, np.ndarray],
    *,
    n_replicates: int,
    seed: int,
    workers: int | None = None,
) -> BootstrapResult:
    """Bootstrap ``statistic`` over persons.

    Parameters
    ----------
    statistic : callable
        Maps a dict of person-level arrays (all of length n) to a dict of arrays; must be
        picklable (a module-level function or an instance of a module-level class).
    data : dict of arrays
        Person-level inputs, one row per person.
    template : dict of arrays
        The statistic on the full data (gives the names and shapes; a replicate that fails is NaN).
    n_replicates, seed : int
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs in this process.

    Returns
    -------
    BootstrapResult
    """
    reps = {k: np.full((n_replicates, *np.shape(v)), np.nan) for k, v in template.items()}
    if n_replicates <= 0:
        return BootstrapResult(reps, 0, seed, 0)
    children = np.random.SeedSequence(seed).spawn(n_replicates)
    seeds = list(enumerate(children))
    workers = max(1, min(workers or os.cpu_count() or 1, n_replicates))
    mapper = _CHUNK_MAPPER.get()
    n_chunks = min(n_replicates, workers * 4)
    chunks = [seeds[i::n_chunks] for i in range(n_chunks)]
    report = _PROGRESS.get() or (lambda done, total: None)
    results: list[tuple[int, dict | str]] = []
    if mapper is not None:
        done = mapper(partial(run_replicates, statistic, data), chunks)
        results = [item for chunk in done for item in chunk]
        report(len(results), n_replicates)
    elif workers == 1:
        for chunk in chunks:
            results.extend(run_replicates(statistic, data, chunk))
            report(len(results), n_replicates)
    else:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=_context(), initializer=_init_worker, initargs=(statistic, data)
        ) as pool:
            for chunk in pool.map(_run_chunk, chunks):
                results.extend(chunk)
                report(len(results), n_replicates)
    failed, first_error = 0, None
    for r, value in sorted(results, key=lambda item: item[0]):
        if isinstance(value, str):
            failed += 1
            first_error = first_error or value
            continue
        for k in reps:
            reps[k][r] = value[k]
    return BootstrapResult(reps, n_replicates, seed, failed, first_error)
