"""A simulated-annealing sampler for Optuna, in the shape of Optuna's user-defined samplers.

The AGB paper compares its lambda search with simulated annealing over the distill weight beta.
Optuna ships TPE and random search but no annealing, and documents how to write one as a
``BaseSampler`` with relative sampling; this is that sampler, written for augkd's searches:

- the chain's *current* point starts at the first finished trial; each new trial proposes a
  neighbour of it (a Gaussian step in the unit cube of the search space: log-scale for a
  log-uniform parameter, so beta moves by factors, not by absolute amounts);
- a finished trial becomes the current point if it is better, or if it is worse by ``d`` with
  probability ``exp(-d / T)``, ``T`` falling geometrically per finished trial;
- the step shrinks with the temperature, from ``step`` of the range down to a tenth of it.

Parameters that are not in every finished trial (the first trial, conditional parameters) fall
back to a seeded :class:`optuna.samplers.RandomSampler`. Each process keeps its own chain; a
restarted search rebuilds it from the storage's finished trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState


class AnnealingSampler(BaseSampler):
    """Simulated annealing over the float and int parameters of a study.

    Args:
        temperature: initial temperature, in units of the objective (held-out top-1 points
            for augkd.tune: a trial 1 point worse is accepted with probability exp(-1/T)).
        cooling: the temperature's factor per finished trial.
        step: the proposal's standard deviation at the initial temperature, as a fraction of
            each parameter's (log-)range.
        seed: seed of the proposals, the acceptance draws and the random fallback.
    """

    def __init__(self, temperature: float = 2.0, cooling: float = 0.9, step: float = 0.25,
                 seed: int | None = None) -> None:
        for name, value in (("temperature", temperature), ("step", step)):
            if not value > 0:
                raise ValueError(f"AnnealingSampler {name} must be > 0, got {value!r}")
        if not 0 < cooling <= 1:
            raise ValueError(f"AnnealingSampler cooling must be in (0, 1], got {cooling!r}")
        self.temperature, self.cooling, self.step = temperature, cooling, step
        self._rng = np.random.default_rng(seed)
        self._fallback = RandomSampler(seed=seed)
        self._space = IntersectionSearchSpace()
        self._seen: set[int] = set()  # trial numbers already replayed into the chain
        self._current: FrozenTrial | None = None
        self._finished = 0

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        space = self._space.calculate(study)
        return {name: dist for name, dist in space.items()
                if isinstance(dist, FloatDistribution | IntDistribution) and not dist.single()}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        self._catch_up(study)
        if self._current is None:
            return {}
        scale = self.step * max(0.1, self._temperature() / self.temperature)
        params = {}
        for name, dist in search_space.items():
            unit = _to_unit(self._current.params[name], dist)
            unit = float(np.clip(unit + self._rng.normal(0.0, scale), 0.0, 1.0))
            params[name] = _from_unit(unit, dist)
        return params

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def _temperature(self) -> float:
        return self.temperature * self.cooling ** self._finished

    def _catch_up(self, study: Study) -> None:
        """Replay the finished trials this chain has not seen, in trial order."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        for t in sorted(done, key=lambda t: t.number):
            if t.number in self._seen or t.value is None:
                continue
            self._seen.add(t.number)
            if self._current is None:
                self._current = t
            else:
                worse_by = sign * (self._current.value - t.value)
                if worse_by <= 0 or self._rng.random() < math.exp(-worse_by /
                                                                  self._temperature()):
                    self._current = t
            self._finished += 1


def _to_unit(value: float, dist: FloatDistribution | IntDistribution) -> float:
    low, high = float(dist.low), float(dist.high)
    if dist.log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def _from_unit(unit: float, dist: FloatDistribution | IntDistribution) -> float | int:
    low, high = float(dist.low), float(dist.high)
    if dist.log:
        value = math.exp(math.log(low) + unit * (math.log(high) - math.log(low)))
    else:
        value = low + unit * (high - low)
    value = min(max(value, low), high)
    if isinstance(dist, IntDistribution):
        step = dist.step or 1
        return int(min(max(round((value - low) / step) * step + low, low), high))
    if dist.step is not None:
        value = min(round((value - low) / dist.step) * dist.step + low, high)
    return value


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler named ``tpe``, ``random`` or ``anneal``, seeded."""
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "random": lambda: RandomSampler(seed=seed),
        "anneal": lambda: AnnealingSampler(seed=seed),
    }
    if name not in samplers:
        raise ValueError(f"unknown sampler {name!r}; known: {', '.join(samplers)}")
    return samplers[name]()


__all__: Sequence[str] = ("AnnealingSampler", "make_sampler")
