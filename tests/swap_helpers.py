"""The checked swap's registry with fake replicas (issue 26), for the tests of its decision
(test_checked_swap.py) and of its timeline and regressors (test_checked_swap_regressors.py).

The fake replicas (tests/fakes.py) answer ``2 * x0 + x1``; a version whose file starts with
``bad`` adds 100 (a model "trained on shuffled labels"), one starting with ``close`` adds a
little (a retrain with another seed). A test module takes the fixtures by name:
``model = swap_helpers.model``, ``folder = swap_helpers.folder``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeModel, FakeReplica
from winserve.backends.runner import ReplicaRunner
from winserve.host.answers import PredictAnswer
from winserve.model_info import ModelSpec
from winserve.models.registry import Registry
from winserve.settings import Settings

NAME = "churn"
ROWS = 40  # rows of the reference sample with_reference writes


class ShiftedReplica(FakeReplica):
    """A fake replica whose answers move by what its file says (see the module docstring)."""

    def predict(
        self, payload: dict[str, Any], proba: bool, timeout: float, scores: bool = False
    ) -> PredictAnswer:
        answer = super().predict(payload, proba, timeout, scores)
        head = Path(self.spec.path).read_bytes()[:5]
        shift = 100.0 if head.startswith(b"bad") else 0.01 if head.startswith(b"close") else 0
        if answer["ok"] and shift:
            return {**answer, "predictions": [p + shift for p in answer["predictions"]]}
        return answer


class ShiftedModel(FakeModel):
    def make_replica(self, index: int, spec: ModelSpec) -> ReplicaRunner:
        replica = ShiftedReplica(index, spec, self)
        with self.lock:
            self.replicas.append(replica)
        return replica


@pytest.fixture
def model() -> ShiftedModel:
    """Makes the fake replicas of every version; ``model.replicas`` lists them."""
    return ShiftedModel()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of models holding NAME's first version."""
    found = tmp_path / "models"
    found.mkdir()
    (found / f"{NAME}.joblib").write_bytes(b"version 1")
    return found


def with_reference(folder: Path) -> Path:
    """NAME's reference sample of ROWS rows beside its file."""
    lines = ["x0,x1", *(f"{i},{i % 3}" for i in range(ROWS))]
    (folder / f"{NAME}.reference.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def registry_of(model: FakeModel, folder: Path, when: str = "agree>=0.95", **more: Any) -> Registry:
    """A registry of ``folder`` with ``model``'s fake replicas, no log, the checked swap on."""
    settings = Settings(**{"model": folder, "log": False, "swap_when": when, **more})
    return Registry(settings, model.make_backend)


def new_file(folder: Path, content: bytes) -> Path:
    """NAME's file, now holding ``content`` (its first bytes say how its answers move)."""
    path = folder / f"{NAME}.joblib"
    path.write_bytes(content)
    return path
