"""Our torch zip reader against torch's own, on every mutation of real ``torch.save`` files.

Each mutation rewrites a copy of a real Lightning ``.ckpt`` or Megatron ``common.pt`` (written by the real
libraries, tests/conftest.py) at the zip level: duplicate and case-folded names, mixed folders, end-record
counts, sizes, offsets, flags, compression methods, the small records torch reads, and a fixed sample of
single-byte changes to the zip's structure (tests/support/zip_parts.py). torch's real reader judges each one
in a subprocess: ``torch.load(weights_only=True)`` (the zip layer, ``PyTorchFileReader``, storages, tensor
rebuild), then ``PyTorchFileReader`` for the exact ``data.pkl`` and storage bytes it reads.

The promise checked: where torch refuses, we refuse; where we accept, we read the same ``data.pkl`` and the
same bytes for every storage; where torch accepts and we refuse, the refusal is one of the rules that are
stricter than torch by design (:data:`STRICTER`), and the mutation says it expects that rule.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nemo_resume.checkpoint.safe_pickle import UnreadablePickle, read_torch_file
from nemo_resume.checkpoint.torch_zip import open_torch_zip
from nemo_resume.constants import MAX_TORCH_PICKLE_BYTES
from tests.support.zip_parts import MUTATIONS, Mutation, Zip, byte_flips, write_mutation

pytestmark = pytest.mark.nemo

#: The refusals that are stricter than torch on purpose, by the word their reason holds: torch reads the
#: file, but another reader reads it differently, or torch reads uninitialised memory, or byte-swaps
#: every tensor, or inflates what torch.save never compresses.
STRICTER = {
    "two entries": "two members whose names differ at most in case: miniz's binary search picks either",
    "compressed": "torch.save never compresses; inflating is unbounded work",
    "directory or empty": "torch returns uninitialised memory for it",
    "byteorder": "torch would byte-swap every tensor",
    "NUL": "C strings end at the NUL, lengths do not",
}


# ----------------------------------------------------------------------------------------- the two readers

# torch's reader, in a fresh interpreter (a crash there is a refusal, never ours): one JSON line per path.
_TORCH = r"""
import hashlib, io, json, pathlib, pickle, sys, warnings
warnings.simplefilter("ignore")
import torch

class Stub(dict):
    def __init__(self, *a, **k): pass
    def __setstate__(self, state): pass

class Pids(pickle.Unpickler):
    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.pids = []
    def find_class(self, module, name):
        return getattr(torch, name) if module == "torch" and name.endswith("Storage") else Stub
    def persistent_load(self, pid):
        self.pids.append(pid)

def view(path):
    try:
        with torch.serialization.safe_globals([pathlib.PosixPath]):
            torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        return {"refused": f"{type(exc).__name__}: {str(exc)[:200]}"}
    reader = torch._C.PyTorchFileReader(open(path, "rb"))
    data = reader.get_record("data.pkl")
    pids = Pids(data)
    pids.load()
    storages = {}
    for _, kind, key, _, numel in pids.pids:
        if key not in storages and numel * kind(0).element_size():
            storages[key] = hashlib.sha256(reader.get_record(f"data/{key}")).hexdigest()
    return {"pickle": hashlib.sha256(data).hexdigest(), "storages": storages}

for line in sys.stdin:
    print(json.dumps(view(line.rstrip("\n"))), flush=True)
"""


def torch_views(paths: list[Path]) -> list[dict]:
    """torch's verdict on each path; a path that crashes torch's reader is a refusal."""
    out: list[dict] = []
    while len(out) < len(paths):
        rest = paths[len(out) :]
        proc = subprocess.run(
            [sys.executable, "-c", _TORCH], input="\n".join(map(str, rest)) + "\n",
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        out += [json.loads(line) for line in proc.stdout.splitlines()]
        if proc.returncode != 0 and len(out) < len(paths):
            out.append({"refused": f"torch's reader crashed ({proc.returncode})"})
    return out


def our_view(path: Path) -> dict:
    """What our reader reads, in the oracle's terms."""
    try:
        result = read_torch_file(path)
    except (UnreadablePickle, OSError) as exc:
        return {"refused": str(exc)}
    raw = path.read_bytes()
    with open_torch_zip(path) as archive:
        storages = {}
        for ref in result.storages:
            extent = archive.storage_extent(ref.key)
            if ref.key not in storages and extent is not None and extent[1]:
                storages[ref.key] = hashlib.sha256(raw[extent[0] : extent[0] + extent[1]]).hexdigest()
        data = archive.read_pickle(MAX_TORCH_PICKLE_BYTES)
    return {"pickle": hashlib.sha256(data).hexdigest(), "storages": storages}


@dataclass(frozen=True)
class Verdict:
    mutation: Mutation
    ours: dict
    torch: dict

    def problem(self) -> str | None:
        """Why our verdict breaks the promise in the module docstring, or None."""
        ours_refused, torch_refused = "refused" in self.ours, "refused" in self.torch
        if torch_refused and not ours_refused:
            return f"torch refuses ({self.torch['refused']}) but we read it"
        if not ours_refused and self.ours != self.torch:
            return f"we read something else than torch: ours {self.ours}, torch's {self.torch}"
        if ours_refused and not torch_refused:
            rule = next((w for w in STRICTER if w in self.ours["refused"]), None)
            if rule is None or (self.mutation.stricter and rule != self.mutation.stricter):
                return f"we refuse ({self.ours['refused']}) what torch reads the same way"
        return None


# ----------------------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def sources(incident_ckpt, megatron_incident_ckpt) -> dict[str, Path]:
    return {"ckpt": incident_ckpt, "common.pt": megatron_incident_ckpt / "weights" / "common.pt"}


@pytest.fixture(scope="module")
def verdicts(sources, tmp_path_factory) -> dict[tuple[str, str], Verdict]:
    """Every mutation of both real files, judged by both readers (one torch interpreter for all)."""
    root = tmp_path_factory.mktemp("torch_zip")
    jobs: list[tuple[str, Mutation, Path]] = []
    for kind, src in sources.items():
        flips = byte_flips(src.read_bytes(), 150, seed=17)
        for i, mutation in enumerate(MUTATIONS + flips):
            jobs.append((kind, mutation, write_mutation(src, mutation, root / f"{kind}-{i}.zip")))
    theirs = torch_views([path for _, _, path in jobs])
    return {(kind, m.name): Verdict(m, our_view(path), t) for (kind, m, path), t in zip(jobs, theirs)}


@pytest.mark.parametrize("kind", ["ckpt", "common.pt"])
@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_is_read_as_torch_reads_it_or_refused(verdicts, kind, mutation):
    verdict = verdicts[(kind, mutation.name)]
    assert verdict.problem() is None, verdict.problem()
    if mutation.stricter and "refused" not in verdict.torch:
        assert mutation.stricter in verdict.ours.get("refused", ""), verdict.ours


@pytest.mark.parametrize("kind", ["ckpt", "common.pt"])
def test_single_byte_changes_in_the_directory_are_read_as_torch_reads_them_or_refused(verdicts, kind):
    problems = {
        name: v.problem() for (k, name), v in verdicts.items() if k == kind and name.startswith("byte ") and v.problem()
    }
    assert problems == {}, json.dumps(problems, indent=1)[:6000]


def test_the_unchanged_files_are_read_by_both(sources, verdicts):
    for kind, src in sources.items():
        assert Zip.parse(src.read_bytes()).build() == src.read_bytes()  # the mutations start from the real file
        v = verdicts[(kind, "unchanged")]
        assert "refused" not in v.ours and v.ours == v.torch and v.ours["storages"], v
