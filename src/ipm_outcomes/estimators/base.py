"""What every estimator shares: the constructor contract.

The contract is scikit-learn's (``sklearn.base.BaseEstimator``): ``__init__`` stores its keyword
arguments as given and does nothing else; validation and conversion happen in ``fit``;
:meth:`BaseEstimator.get_params` returns the settings, so ``type(est)(**est.get_params())`` is an
unfitted copy (what a bootstrap replicate or a sensitivity analysis needs). Fitted results are
attributes ending in ``_`` plus a tidy ``summary`` DataFrame, as in lifelines.

:class:`~ipm_outcomes.estimators._summary.TwoArmSurvivalEstimator` adds what the two-arm
cumulative-incidence estimators (landmark, naive, clone-censor-weight) share: horizons and the
last day of the curves, the person-level bootstrap, and the arm and contrast tables.
"""

from __future__ import annotations

import inspect

from ..errors import IpmError


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
