"""``recipes/qwen25_pretrain.py --lr-find --smoke`` on NeMo's real Megatron path (CPU, distributed optimizer): the
sweep runs in ``<name>-lr-find`` beside a finished run of the same name, follows the exponential sweep at every step
in every param group (an ``--lr-mult`` group at its ratio), saves no checkpoint, leaves the user's run as it was,
and recommends an LR inside the swept range with a plot; ``nemo-resume lr-find`` reads the same from its logs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nemo_resume.audit.events import read_run
from nemo_resume.schedules.lr_sweep import LrSweep

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]

SWEEP = LrSweep(1e-6, 1.0, 30)
MULT = 0.5


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for r in roots for p in sorted(r.rglob("*"))}


@pytest.fixture(scope="module")
def sweep(finished_rehearsal, tmp_path_factory):
    """The finished 30-step run (checkpoints at 10, 20, 30) copied, then the sweep run beside it under its name."""
    from nemo_resume.cli.recipe_cmd import run_script

    source = finished_rehearsal(True, 1)
    assert source.result.error is None, source.why()
    root = tmp_path_factory.mktemp("lr_find")
    shutil.copytree(source.run_dir.parent, root, dirs_exist_ok=True)
    name = source.run_dir.name
    user = (root / name, root / "tb_logs" / name)
    before = _snapshot(*user)
    argv = ["--lr-find", "--smoke", "--lr-find-min", str(SWEEP.min_lr), "--lr-find-max", str(SWEEP.max_lr),
            "--lr-find-steps", str(SWEEP.steps), "--lr-mult", f"*linear_fc2*={MULT}", "--dir", str(root),
            "--name", name, "--json"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEMORUN_HOME", str(root / "nemorun"))
        mp.setattr("sys.stdout", out := _Capture())
        code = run_script("pretrain", argv, prog="recipes/qwen25_pretrain.py")
    return code, json.loads(out.text), root / f"{name}-lr-find", before, _snapshot(*user)


class _Capture:
    """stdout for the in-process script (``--json``: its one document)."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass


def test_the_sweep_recommends_an_lr_in_range_with_a_plot_and_leaves_the_run_alone(sweep):
    code, doc, sweep_dir, before, after = sweep
    assert code == 0, doc
    assert after == before  # the user's run folder and logs: not a file added, changed or removed
    found = doc["lr_find"]
    for lr in found["recommended"].values():
        assert SWEEP.min_lr <= lr <= SWEEP.max_lr
    assert Path(found["plot"]) == sweep_dir / "lr-find.png"
    assert Path(found["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in sweep_dir.rglob("*") if p.name == "checkpoints" or "step=" in p.name]


def test_every_group_follows_the_sweep_at_its_ratio_and_the_command_reads_the_same(sweep, capsys):
    from nemo_resume.cli import main

    _, doc, sweep_dir, _, _ = sweep
    (attempt,) = read_run(sweep_dir)
    assert attempt.every_group and sorted(attempt.lrs) == list(range(SWEEP.steps))
    ratios = {round(lr / SWEEP.lr(step), 6) for step, lrs in attempt.lrs.items() for lr in lrs}  # TensorBoard keeps float32
    assert ratios == {1.0, MULT}
    assert main(["lr-find", str(sweep_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recommended"] == doc["lr_find"]["recommended"]
