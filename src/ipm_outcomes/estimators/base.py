"""What every estimator shares: the constructor contract, the bootstrap and the tabulation.

The contract is scikit-learn's (``sklearn.base.BaseEstimator``): ``__init__`` stores its keyword
arguments as given and does nothing else; validation and conversion happen in ``fit``;
:meth:`BaseEstimator.get_params` returns the settings, so ``type(est)(**est.get_params())`` is an
unfitted copy (what a bootstrap replicate or a sensitivity analysis needs). Fitted results are
attributes ending in ``_`` plus a tidy ``summary`` DataFrame, as in lifelines.

:class:`TwoArmSurvivalEstimator` holds what the two-arm return-to-work estimators (landmark,
naive, clone-censor-weight) share: horizons and the last day of the curves, the person-level
bootstrap, and the arm and contrast tables built from one dict of statistics.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from ..errors import IpmError
from . import bootstrap as boot
from ._summary import curve_frame, interval_function, summary_frame
from .survival import EventTable


class BaseEstimator:
    """Settings from the constructor's keyword arguments, stored as given (scikit-learn's contract)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]

    def get_params(self) -> dict:
        """The constructor's arguments as stored: ``type(self)(**self.get_params())`` is an unfitted copy."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> BaseEstimator:
        """Change settings by name (unknown names are an error); returns self."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise IpmError(f"{type(self).__name__} has no setting {name!r}; settings: {', '.join(sorted(valid))}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in (0, 1), or one readable error."""
    if not 0 < float(alpha) < 1:
        raise IpmError(f"alpha must be between 0 and 1 (1 - confidence level), got {alpha!r}")
    return float(alpha)


class TwoArmSurvivalEstimator(BaseEstimator):
    """Base of the two-arm cumulative-incidence estimators (settings, bootstrap, tabulation).

    Subclasses declare ``horizons``, ``max_day``, ``n_bootstrap``, ``seed``, ``workers`` and
    ``alpha`` among their constructor arguments, compute one dict of statistics (keys
    ``cif/<arm>``, ``rd/<a>/<b>``, ...; see :mod:`ipm_outcomes.estimators._summary`) from a dict of
    person-level arrays, and call :meth:`_bootstrap` and :meth:`_tables`.
    """

    def _grid(self) -> tuple[tuple[int, ...], int]:
        """Validated horizons and last day of the curves (default: the largest horizon)."""
        horizons = tuple(int(h) for h in self.horizons)
        if not horizons or min(horizons) < 1:
            raise IpmError(f"horizons must be whole numbers of days >= 1, got {list(self.horizons)}")
        max_day = int(self.max_day if self.max_day is not None else max(horizons))
        if max(horizons) > max_day:
            raise IpmError("every horizon must be <= max_day")
        check_alpha(self.alpha)
        return horizons, max_day

    def _bootstrap(
        self, statistic: Callable[[Mapping[str, np.ndarray]], dict], data: Mapping[str, np.ndarray], values: dict
    ) -> Callable:
        """Run the person-level bootstrap (when ``n_bootstrap > 0``; sets ``bootstrap_``) and return
        ``key -> (low, high)`` percentile intervals (NaN without a bootstrap)."""
        self.bootstrap_ = None
        if self.n_bootstrap > 0:
            self.bootstrap_ = boot.run(
                statistic, data, values, n_replicates=self.n_bootstrap, seed=self.seed, workers=self.workers
            )
        return interval_function(values, self.bootstrap_, self.alpha)

    def _tables(
        self,
        values: dict,
        interval: Callable,
        tables: dict[str, EventTable],
        n_arm: dict[str, int],
        contrasts: list[tuple[str, str]],
        n_total: int,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(curves, summary): one row per arm per day, and one row per measure per arm (or
        contrast) per horizon (the hazard ratio over the whole follow-up at ``max_day``)."""
        horizons, max_day = self._grid()
        curves = curve_frame(values, interval, tables, max_day)
        summary = summary_frame(values, interval, n_arm, contrasts, horizons, n_total, max_day)
        return curves, summary
