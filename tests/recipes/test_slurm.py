"""``--executor slurm``: the job gets the nemo_resume its config names, and paths it can reach.

Regression (issue 16, item 6): a Slurm job runs the stock NeMo container, where nemo_resume is not
installed, yet its config names nemo_resume classes. The executor left NeMo-Run's default packager
(a git archive of the current directory's repository: fails outside one, never holds an installed
package), and its LocalTunnel submitted from ``<dir>/nemo_run`` while NeMo-Run wrote the sbatch
script and the code under ``~/.nemo_run``: sbatch would find no script. A relative ``--dir`` reached
the job as written (the job runs in ``/nemo_run/code``), and a ``--dir`` outside every ``--mount``
would have written checkpoints onto the container's own disk.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from nemo_resume.cli.recipe_cmd import run_script
from nemo_resume.recipes.slurm import package_dir

SLURM = ["--executor", "slurm", "--account", "acct", "--partition", "batch", "--container-image", "nvcr.io/nvidia/nemo:25.09"]
# Each class the config names, by module: the staged scheduler, --save-from-step's checkpoint, --lr-mult's matcher.
STAGED = ["--lr-stages", "60:1e-4,40:1e-5", "--save-from-step", "50", "--checkpoint-every", "10",
          "--lr-mult", "*layers.0.*=0.5"]
NAMED = ("nemo_resume.schedules.staged", "nemo_resume.save_from_checkpoint", "nemo_resume.schedules.param_match")


@pytest.fixture(autouse=True)
def _no_terminal(monkeypatch, tmp_path):
    # NeMo-Run's tunnel runs shell commands through `invoke`, which reads stdin: give it an empty one
    # instead of pytest's unreadable stand-in. NeMo-Run's home (where a dry run writes): a tmp folder.
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "nemorun"))  # read when nemo_run is first imported
    if "nemo_run.config" in sys.modules:
        monkeypatch.setattr(sys.modules["nemo_run.config"], "_NEMORUN_HOME", str(tmp_path / "nemorun"))


@pytest.mark.parametrize(("flags", "says"), [
    (["--dir", "/tmp/runs"], "--dir /tmp/runs: not under any --mount"),
    (["--dir", "/tmp/runs", "--mount", "/tmp:/workspace"], "mount it at the same path (--mount /tmp:/tmp)"),
    (["--dir", "/tmp/runs", "--mount", "/tmp:/tmp:ro"], "--mount /tmp:/tmp is read-only"),
    (["--dir", "/tmp/runs", "--mount", "tmp:/tmp"], "--mount tmp:/tmp: SRC and DST must be absolute"),
    (["--dir", "/tmp/runs", "--mount", "/tmp:/tmp", "--resume", "/scratch/ckpt"], "--resume /scratch/ckpt: not under"),
])
def test_a_path_the_container_cannot_see_is_a_one_line_refusal(capsys, flags, says):
    assert run_script("pretrain", [*SLURM, *flags, "--dry-run"], prog="p") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("p: error: ") and says in err[0], err


def test_the_job_gets_absolute_paths_and_an_instruction_jsonl_needs_no_mount(tmp_path, monkeypatch):
    from nemo_resume.recipes.options import build_parser, options_from_args

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "d.jsonl").write_text('{"instruction": "say hi", "input": "", "output": "hi"}\n')
    runs = tmp_path / "runs"
    argv = [*SLURM, "--mount", f"{runs}:{runs}", "--dir", "runs", "--resume", "runs/old/checkpoints/last",
            "--data", "in/d.jsonl"]
    opts = options_from_args("finetune", build_parser("finetune", "p").parse_args(argv))
    # the JSONL is converted into <dir>/<name>/data on this machine: the job never opens it
    assert (opts.dir, opts.data, opts.resume) == (runs, tmp_path / "in" / "d.jsonl", f"{runs}/old/checkpoints/last")


@pytest.mark.nemo
def test_dry_run_names_absolute_paths_and_shows_how_nemo_resume_gets_in(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = run_script("pretrain", [*SLURM, *STAGED, "--mount", f"{tmp_path}:{tmp_path}", "--dir", "runs", "--dry-run"],
                      prog="p")
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    runs = tmp_path / "runs"
    assert f"note: --dir runs is relative and the Slurm job runs in /nemo_run/code: it gets {runs}" in captured.out
    assert f"PatternPackager copies {package_dir()}" in captured.out
    flat = re.sub(r"\s+", "", captured.out)  # NeMo-Run's console wraps long lines
    assert f"dir:{runs}" in flat  # the config YAML: the job's NeMoLogger writes under the absolute --dir
    jobs = f"{runs}/slurm_jobs/experiments/qwen25_pretrain/qwen25_pretrain_"
    assert f"--container-mounts{tmp_path}:{tmp_path},{jobs}" in flat and "--container-workdir/nemo_run/code" in flat
    assert not runs.exists()  # a dry run writes nothing under --dir


@pytest.mark.nemo
def test_the_launched_job_imports_the_packaged_nemo_resume(tmp_path, monkeypatch):
    """What ``exp.run`` writes before it calls sbatch (its own dry run, kept), read as the job reads it."""
    import nemo_run as run

    from nemo_resume.planning import plan_resume
    from nemo_resume.recipes.launch import executor
    from nemo_resume.recipes.options import build_parser, options_from_args
    from nemo_resume.recipes.qwen25 import qwen25_recipe
    from nemo_resume.recipes.slurm import experiment_base_dir

    monkeypatch.chdir(tmp_path)  # not a git repository: NeMo-Run's default packager would fail here
    argv = [*SLURM, *STAGED, "--mount", f"{tmp_path}:{tmp_path}", "--dir", str(tmp_path / "runs")]
    opts = options_from_args("pretrain", build_parser("pretrain", "p").parse_args(argv))
    recipe = qwen25_recipe(opts, plan_resume(opts.run_dir, opts.request()))
    ex = executor(opts)
    with run.Experiment(opts.name, executor=ex, base_dir=experiment_base_dir(ex, dryrun=False)) as exp:
        exp.add(recipe, name=opts.name)
        exp.dryrun(log=False, exist_ok=True, delete_exp_dir=False)  # exp.run's first step
        job = exp.jobs[0]
    # the script sbatch is given (SlurmTunnelScheduler.schedule: the tunnel's job_dir) exists
    script = Path(job.executor.tunnel.job_dir, f"{job.executor.job_name}_sbatch.sh").read_text()
    (job_folder,) = re.findall(r"[,\s]([^,\s]+):/nemo_run\s", script)
    assert job_folder.startswith(str(tmp_path / "runs" / "slurm_jobs")) and "--container-workdir /nemo_run/code" in script
    code = Path(job_folder, "code")
    with tarfile.open(Path(job_folder, f"{opts.name}.tar.gz")) as tar:
        packed = set(tar.getnames())
    for module in ("nemo_resume.callback", *NAMED):
        relative = module.replace(".", "/") + ".py"
        assert relative in packed
        assert (code / relative).read_bytes() == (package_dir().parent / relative).read_bytes()
    # The job's own config, loaded in the job's working directory by a Python that has no nemo_resume
    # installed (the editable install's finder removed), as `python -m ...fdl_runner` in the container.
    config = Path(job_folder, "configs", f"{opts.name}_fn_or_script")
    probe = (
        "import sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
        "from nemo_run.core.serialization.zlib_json import ZlibJSONSerializer\n"
        "ZlibJSONSerializer().deserialize(open(sys.argv[1]).read())\n"
        "print({n: m.__file__ for n, m in sys.modules.items() if n.startswith('nemo_resume')})\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", probe, str(config)], cwd=code, env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    loaded = eval(out.strip().splitlines()[-1])  # noqa: S307 - the dict the probe printed
    assert set(NAMED) <= set(loaded) and all(Path(f).is_relative_to(code) for f in loaded.values()), loaded
