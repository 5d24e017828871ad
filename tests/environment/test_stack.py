"""The stack check: the known-good set is pyproject's [nemo] extra and constraints.txt's ranges, a version off it
is a warning naming the pin and the reason, a breakage in the installed files or a missing package a blocker."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from nemo_resume.environment import stack
from nemo_resume.environment.stack import check_stack, known_good

pytestmark = pytest.mark.nemo

ROOT = Path(__file__).resolve().parents[2]


def _by_subject(findings):
    return {f.subject: f for f in findings}


def _pairs(reqs) -> set[tuple[str, str]]:
    return {(canonicalize_name(r.name), str(r.specifier)) for r in reqs}


def test_the_known_good_set_is_the_nemo_extra_and_the_constraints_ranges():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["nemo"]
    wanted = known_good()
    assert wanted is not None
    assert _pairs(wanted) == _pairs(map(Requirement, extra)) | _pairs(map(Requirement, stack.RANGES))
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    assert [r for r in stack.RANGES if r not in constraints] == []


def test_the_installed_stack_here_is_the_known_good_one():
    found = check_stack()
    assert [f for f in found if f.level != "ok"] == []
    assert {"nemo_toolkit", "megatron-core", "leptonai", "torch", "numpy", "datasets", "pyarrow"} <= set(_by_subject(found))


def test_a_version_off_the_pin_is_a_warning_with_the_pin_and_why(monkeypatch):
    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda d: "0.16.0" if d == "megatron-core" else real(d))
    f = _by_subject(check_stack())["megatron-core"]
    assert f.level == "warning"
    assert "0.16.0 is not the known-good ==0.15.3" in f.message and "no_weight_decay_cond" in f.message
    assert f.facts == {"installed": "0.16.0", "wanted": "==0.15.3"}


def test_numpy_2_is_named_with_the_reason(monkeypatch):
    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda d: "2.1.0" if d == "numpy" else real(d))
    f = _by_subject(check_stack())["numpy"]
    assert f.level == "warning" and "numpy < 2" in f.message


def test_a_missing_package_is_a_blocker(monkeypatch):
    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda d: None if d == "leptonai" else real(d))
    found = check_stack()
    assert _by_subject(found)["leptonai"].level == "blocker"
    assert not any(f.subject == "leptonai" and "api.v1" in f.message for f in found)  # said once, as missing


def test_a_breakage_seen_in_the_installed_files_is_a_blocker(monkeypatch):
    """megatron-core 0.16's get_megatron_optimizer without no_weight_decay_cond, as its file would read."""
    real = stack.installed_text

    def without_the_keyword(dist, path):
        text = real(dist, path)
        return text.replace("no_weight_decay_cond", "") if path.endswith("optimizer/__init__.py") else text

    monkeypatch.setattr(stack, "installed_text", without_the_keyword)
    (f,) = [f for f in check_stack() if f.level == "blocker"]
    assert f.subject == "megatron-core" and "get_megatron_optimizer() takes no no_weight_decay_cond" in f.message
    assert f.facts == {"file": "megatron/core/optimizer/__init__.py", "needs": "no_weight_decay_cond"}


def test_the_breakages_are_read_from_files_the_installed_packages_hold():
    for b in stack.BREAKAGES:
        text = stack.installed_text(b.dist, b.path)
        assert text is not None and (b.needle is None or b.needle in text), b
