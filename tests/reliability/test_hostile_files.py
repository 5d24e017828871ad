"""Hostile files in real checkpoints: zip bombs, pickles built to hang, crash or fill memory, and the
promise that no inspect/plan path ever hands a user's file to ``torch.load`` or ``pickle``.

Each hostile case runs the CLIs in a fresh interpreter (a hang must become a timeout, not a stuck test
session) and bounds its time and peak memory. A normal inspection takes about 0.2 s and 20 MiB here.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tests.support.fuzz import (
    call_cli,
    call_pickle,
    deep_tuple_key_pickle,
    lie_about_size,
    replace_zip_member,
    run_cli_measured,
    shared_dag,
    shared_tuple_key_pickle,
    state_with,
    tree_manifest,
)
from tests.support.hostile import PLAN_ARGS

pytestmark = pytest.mark.nemo

MAX_SECONDS = 20.0  # generous for a loaded 2-core machine; a hang runs into the 60 s timeout instead
MAX_RSS_MB = 120.0
PACKAGE = Path(__file__).resolve().parents[2] / "nemo_resume"


def _refused_quickly(run_dir: Path, victim: Path, expect: str = "") -> None:
    """inspect and plan both finish quickly in bounded memory, call ``victim`` incomplete with a reason
    containing ``expect``, and change nothing on disk."""
    before = tree_manifest(run_dir)
    ins = run_cli_measured("inspect", [str(run_dir), "--json"])
    plan = run_cli_measured("plan", [str(run_dir), *PLAN_ARGS, "--json"])
    assert tree_manifest(run_dir) == before
    for run in (ins, plan):
        assert run.code == 1, (run.code, run.err[-2000:])
        assert run.err == "", run.err[-2000:]
        assert run.seconds < MAX_SECONDS and run.max_rss_mb < MAX_RSS_MB, (run.seconds, run.max_rss_mb)
    (c,) = [c for c in ins.json["checkpoints"] if c["path"] == str(victim)]
    assert not c["complete"] and any(expect in r for r in c["incomplete_reasons"]), c["incomplete_reasons"]
    assert plan.json["checkpoint"] is None and plan.json["problems"][0]["code"] == "NO_USABLE_CHECKPOINT"


# ----------------------------------------------------------------------------------------- zip bombs


def test_deflated_data_pkl_bigger_than_the_limit_is_refused_from_its_header(lt):
    replace_zip_member(lt, "data.pkl", deflate_zeros=300 << 20)  # 300 MiB inflated, ~300 KiB on disk
    assert lt.stat().st_size < 2 << 20
    _refused_quickly(lt.parent.parent, lt, "refusing")


def test_deflated_data_pkl_under_the_limit_is_not_inflated(lt):
    # 200 MiB is under the 256 MiB pickle limit, but torch.save never compresses data.pkl: inflating
    # a compressed one is where a zip bomb's memory goes.
    replace_zip_member(lt, "data.pkl", deflate_zeros=200 << 20)
    _refused_quickly(lt.parent.parent, lt, "compressed")


def test_zip_that_understates_its_data_pkl_size_stops_at_the_stated_size(lt):
    member = replace_zip_member(lt, "data.pkl", deflate_zeros=100 << 20)
    lie_about_size(lt, member, 1000)
    _refused_quickly(lt.parent.parent, lt)


# ----------------------------------------------------------------------------------------- pickle bombs


def test_tuple_with_two_to_the_64_shared_leaves_as_a_dict_key_is_refused(mg):
    # A plain unpickler hashes the key level by level, 2**64 times: it never returns and ignores signals.
    replace_zip_member(mg / "weights" / "common.pt", "data.pkl", shared_tuple_key_pickle(64))
    _refused_quickly(mg.parent.parent, mg, "common.pt")


def test_a_million_nested_tuples_as_a_dict_key_is_refused_not_a_crash(mg):
    # Hashing it recurses once per level in C: a plain unpickler dies with SIGSEGV.
    (mg / "weights" / ".metadata").write_bytes(deep_tuple_key_pickle(1_000_000))
    _refused_quickly(mg.parent.parent, mg, ".metadata")


@pytest.mark.parametrize(
    "name, value_ops",
    [
        # pathlib.PosixPath(x) is rebuilt as a string: str() of a shared structure is exponential
        ("posixpath", call_pickle("pathlib", "PosixPath", shared_dag(64) + b"\x85")),
        ("dtype", call_pickle("numpy", "dtype", shared_dag(64) + b"\x85")),
        ("posixpath-of-lists", call_pickle("pathlib", "PosixPath", shared_dag(64, tuples=False) + b"\x85")),
        # an error message that repr()s a shared persistent id (of lists: no tuple is built)
        ("persistent-id", shared_dag(64, tuples=False) + b"Q"),
        # bytearray(n) allocates n bytes from a 10-byte pickle
        ("bytearray", call_pickle("builtins", "bytearray", b"J" + (1 << 30).to_bytes(4, "little") + b"\x85")),
    ],
)
def test_small_pickles_that_expand_when_rebuilt_are_refused(lt, name, value_ops):
    replace_zip_member(lt, "data.pkl", state_with("callbacks", value_ops))
    _refused_quickly(lt.parent.parent, lt)


def test_memo_index_of_a_billion_is_refused_before_the_unpickler_sizes_its_memo_by_it(mg):
    """Fuzz find (a flipped byte in a LONG_BINPUT index): CPython's unpickler grows its memo table to
    twice the index and zeroes it, so five bytes cost gigabytes (13 GiB resident before it was stopped)."""
    payload = b"\x80\x02N" + b"r" + (1 << 28).to_bytes(4, "little") + b"."  # None, LONG_BINPUT 2**28
    replace_zip_member(mg / "weights" / "common.pt", "data.pkl", payload)
    _refused_quickly(mg.parent.parent, mg, "stores memo entry 268435456")


def test_optimizer_state_of_exponentially_shared_lists_is_not_walked_forever(lt):
    # 200 references to a list of 200 references to ... : 200**5 paths for a walker that follows each one.
    replace_zip_member(lt, "data.pkl", state_with("optimizer_states", shared_dag(5, tuples=False, width=200)))
    before = tree_manifest(lt.parent.parent)
    ins = run_cli_measured("inspect", [str(lt), "--json"])
    assert tree_manifest(lt.parent.parent) == before
    assert ins.code in (0, 1) and ins.err == "", ins.err[-2000:]
    assert ins.seconds < MAX_SECONDS and ins.max_rss_mb < MAX_RSS_MB, (ins.seconds, ins.max_rss_mb)
    (c,) = ins.json["checkpoints"]
    assert c["step"] == 499 and c["lr"] == []  # no param_groups anywhere in it


# ----------------------------------------------------------------------------------------- hostile JSON


@pytest.mark.parametrize("where", ["context/io.json", "weights/metadata.json"])
def test_json_nested_a_hundred_thousand_deep_is_a_problem_not_a_crash(mg, where):
    (mg / where).write_text("[" * 100_000 + "]" * 100_000)
    ins = call_cli("inspect", [str(mg.parent), "--json"])
    assert ins.code in (0, 1) and ins.err == "", ins.err
    (c,) = ins.json["checkpoints"]
    if where.startswith("context"):
        assert c["complete"] and any("io.json" in n for n in c["notes"])  # the config is optional
    else:
        assert not c["complete"] and any("metadata.json" in r for r in c["incomplete_reasons"])


@pytest.mark.parametrize("where", ["context/io.json", "weights/metadata.json"])
def test_json_file_of_gigabytes_is_not_read(mg, where):
    path = mg / where
    with open(path, "r+b") as fh:
        fh.truncate(2 << 30)  # sparse: 2 GiB of zeros that take no disk space
    run = run_cli_measured("inspect", [str(mg.parent), "--json"])
    assert run.code in (0, 1) and run.err == "", run.err[-2000:]
    assert run.seconds < MAX_SECONDS and run.max_rss_mb < MAX_RSS_MB, (run.seconds, run.max_rss_mb)


# ----------------------------------------------------------------------------------------- never torch.load


def _torch_load_forbidden(monkeypatch) -> list:
    import pickle

    import torch

    calls: list = []

    def forbidden(*args, **kwargs):
        calls.append((args[:1], kwargs))
        raise AssertionError("a CLI path called a full unpickler on a user file")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(torch.serialization, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    return calls


def test_inspect_and_plan_never_call_torch_load_or_pickle_on_real_checkpoints(
    monkeypatch, megatron_incident_ckpt, megatron_finished_ckpt, incident_run, finished_run
):
    calls = _torch_load_forbidden(monkeypatch)
    targets = [megatron_incident_ckpt, megatron_finished_ckpt, incident_run.log_dir, finished_run.log_dir]
    for target in targets:
        ins = call_cli("inspect", [str(target), "--json"])
        plan = call_cli("plan", [str(target), *PLAN_ARGS, "--json"])
        human = call_cli("plan", [str(target), *PLAN_ARGS, "--resume", "auto"])
        for run in (ins, plan, human):
            assert run.code in (0, 1) and "unexpected" not in run.err, run.err
    assert calls == []


_UNPICKLERS = {
    ("torch", "load"), ("serialization", "load"), ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"),
    ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"), ("yaml", "load"),
    ("io", "load_context"), ("marshal", "loads"), ("joblib", "load"),
}  # fmt: skip


def _calls_to_unpicklers(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = getattr(owner, "id", None) or getattr(owner, "attr", "")
            if (owner_name, node.func.attr) in _UNPICKLERS:
                found.append(f"line {node.lineno}: {owner_name}.{node.func.attr}(...)")
        if isinstance(node, ast.ImportFrom) and node.module in ("torch", "pickle", "dill", "cloudpickle"):
            for alias in node.names:
                if alias.name in ("load", "loads", "Unpickler"):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    return found


def test_no_package_module_calls_an_unpickler():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):  # test tooling, which loads its own fixtures, is in tests/support
        rel = path.relative_to(PACKAGE)
        found = _calls_to_unpicklers(path.read_text())
        if found:
            offenders[str(rel)] = found
    assert offenders == {}, json.dumps(offenders, indent=1)


def test_the_source_scan_would_catch_a_torch_load():
    assert _calls_to_unpicklers("import torch\nstate = torch.load(p, weights_only=False)\n")
    assert _calls_to_unpicklers("from pickle import loads\n")
    assert not _calls_to_unpicklers("from nemo_resume.checkpoint.safe_pickle import read_torch_file\n")


def test_the_pickle_reader_never_imports_what_a_pickle_names(lt, tmp_path):
    sentinel = tmp_path / "imported"
    module = tmp_path / "evil_module_for_nemo_resume.py"
    module.write_text(f"open({str(sentinel)!r}, 'w').close()\ndef f(*a): return 0\n")
    payload = call_pickle("evil_module_for_nemo_resume", "f", b")")
    replace_zip_member(lt, "data.pkl", state_with("callbacks", payload))
    run = run_cli_measured("inspect", [str(lt), "--json"], extra_path=str(tmp_path))
    assert run.code == 0 or run.code == 1, run.err
    assert not sentinel.exists()
    (c,) = run.json["checkpoints"]
    assert "evil_module_for_nemo_resume.f" in [g["global"] for g in c["unsafe_pickle_globals"]]
