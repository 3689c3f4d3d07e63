"""Quick CI profile of the fuzz harness (benchmarks/fuzz/fuzz.py, same classification code).

Every target (DA specs, TrainConfig dicts and YAML files, sweep specs, the train and rank CLIs)
gets its hand-picked corner cases plus a seeded batch of generated inputs; none may end in a
traceback or a hang, and no accepted input may break the documented ranges. The long run is
``python benchmarks/fuzz/fuzz.py --examples 2000 --out ...`` (see benchmarks/fuzz/README.md).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FUZZ_PATH = REPO / "benchmarks" / "fuzz" / "fuzz.py"
EXAMPLES = 60  # generated inputs per target, on top of the explicit corner cases


def _load_harness():
    spec = importlib.util.spec_from_file_location("augkd_fuzz_harness", FUZZ_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


fuzz = _load_harness()


def _describe(records) -> str:
    lines = []
    for r in records[:8]:
        what = r.detail if r.outcome != fuzz.ACCEPTED else "accepted: " + "; ".join(r.invalid)
        lines.append(f"  {r.input[:300]}\n    -> {what[:400]}")
    return "\n".join(lines)


@pytest.mark.parametrize("target", list(fuzz.TARGETS))
def test_no_traceback_and_nothing_invalid_accepted(target):
    records = fuzz.run_target(target, EXAMPLES, seed=0, timeout=20.0)
    assert len(records) >= EXAMPLES // 2
    bad, invalid = fuzz.failures(records)
    message = []
    if bad:
        message.append(f"{len(bad)} inputs of {target} end in a traceback or hang:\n"
                       + _describe(bad))
    if invalid:
        message.append(f"{len(invalid)} invalid inputs of {target} were accepted:\n"
                       + _describe(invalid))
    if message:
        pytest.fail("\n".join(message), pytrace=False)


def test_the_oracle_accepts_what_augkd_ships():
    """The oracle itself: the shipped specs, the defaults and the paper's DAs are valid."""
    from augkd.augment import PAPER_DAS

    assert fuzz.config_problems({}) == []
    assert fuzz.config_problems({"role": "student", "teacher": "t", "aug": "cutmix"}) == []
    for spec in [*PAPER_DAS, "cutmix(beta=1.0)", "cutout(size=8, per_batch=true)"]:
        assert fuzz.da_spec_problems(spec) == [], spec
    for path in sorted((REPO / "experiments").glob("*.yaml")):
        assert fuzz.sweep_problems(yaml.safe_load(path.read_text())) == [], path.name
    assert fuzz.da_spec_problems("cutmix(beta=0)") and fuzz.da_spec_problems("cutmix(")
    assert fuzz.config_problems({"lr": float("nan")}) and fuzz.config_problems({1: 2})
    assert fuzz.sweep_problems({**yaml.safe_load(fuzz.SMOKE_SPEC.read_text()),
                                "grid": {"aug": ["cutmix"], "seed": [True]}})


def test_classification():
    def raises(err):
        def call():
            raise err
        return call

    rec = fuzz.classify("t", "x", raises(ValueError("one line")))
    assert rec.outcome == fuzz.REJECTED
    rec = fuzz.classify("t", "x", raises(FileNotFoundError("no such file: x")))
    assert rec.outcome == fuzz.REJECTED
    assert fuzz.classify("t", "x", raises(ValueError("two\nlines"))).outcome == fuzz.TRACEBACK
    assert fuzz.classify("t", "x", raises(ValueError(""))).outcome == fuzz.TRACEBACK
    assert fuzz.classify("t", "x", raises(TypeError("bad"))).outcome == fuzz.TRACEBACK
    assert fuzz.classify("t", "x", raises(SystemExit(2))).outcome == fuzz.REJECTED
    assert fuzz.classify("t", "x", raises(SystemExit(1))).outcome == fuzz.TRACEBACK
    rec = fuzz.classify("t", "x", lambda: 1, input_problems=["lr is nan"])
    assert rec.outcome == fuzz.ACCEPTED and rec.accepted_invalid
    rec = fuzz.classify("t", "x", lambda: 1, input_problems=[], post=lambda v: [])
    assert rec.outcome == fuzz.ACCEPTED and not rec.accepted_invalid
    rec = fuzz.classify("t", "x", raises(ValueError("no")), input_problems=[])
    assert rec.rejected_valid
    rec = fuzz.classify("t", "x", lambda: time.sleep(5), timeout=0.2)
    assert rec.outcome == fuzz.HANG
