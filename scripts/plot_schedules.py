"""Draw docs/img/schedules/<name>.png: each --schedule as NeMo's module runs it, with Hugging Face's function.

    .venv/bin/python scripts/plot_schedules.py                      # rewrites docs/img/schedules/
    .venv/bin/python scripts/plot_schedules.py --out /tmp/plots     # anywhere else

Settings per name are in SETTINGS (200 steps, lr 1e-4, 20 warmup steps where the name has a
warmup); the values come from tests.support.hf_reference, the code the tests compare.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Runs from a clone without `pip install -e .` too.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nemo_resume.cli.common import EXIT_OK, parse_args, parser, run_cli  # noqa: E402
from nemo_resume.schedules.lr_stages import parse_stages  # noqa: E402
from nemo_resume.schedules.request import ScheduleRequest  # noqa: E402

PROG = "scripts/plot_schedules.py"
DEFAULT_OUT = ROOT / "docs" / "img" / "schedules"
LR, STEPS = 1e-4, 200
SETTINGS: dict[str, dict] = {
    "linear": dict(warmup_steps=20),
    "cosine": dict(warmup_steps=20),
    "cosine_with_min_lr": dict(warmup_steps=20, min_lr=1e-5),
    "polynomial": dict(min_lr=1e-5),
    "constant": {},
    "constant_with_warmup": dict(warmup_steps=20),
    "warmup_stable_decay": dict(warmup_steps=20, decay_steps=60, decay_type="linear", min_lr=1e-5),
    "staged": dict(stages=parse_stages("75:1e-4,50:1e-5:w10,75:5e-6"), lr_mults=(0.5,)),
    # not a Hugging Face shape: NeMo's Megatron cosine path, which --constant-steps > 0 selects
    "cosine_constant_steps": dict(schedule="cosine", warmup_steps=20, constant_steps=50, min_lr=1e-5),
}
TITLES = {
    "staged": "--lr-stages 75:1e-4,50:1e-5:w10,75:5e-6",
    "cosine_constant_steps": "--schedule cosine --warmup-steps 20 --constant-steps 50 --min-lr 1e-5",
}


def request(name: str) -> ScheduleRequest:
    kw = {"min_lr": 0.0, "schedule": name, **SETTINGS[name]}
    return ScheduleRequest(LR, kw.pop("min_lr"), STEPS, checked=False, **kw)


def draw(name: str, out: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nemo_resume.schedules.scheduler_module import scheduler_module
    from tests.support.hf_reference import hf_lrs, nemo_lrs

    req = request(name)
    steps = list(range(STEPS + 1))
    fig = Figure(figsize=(5, 2.6), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    nemo = nemo_lrs(req, steps)
    for g in range(nemo.shape[1]):
        ax.plot(
            steps,
            nemo[:, g],
            color=f"C{g}",
            lw=1.6,
            label=scheduler_module(req).label + (f" (group {g}, lr_mult 0.5)" if g else ""),
        )
    if name not in TITLES:  # a Hugging Face name: its own curve beside NeMo's
        ax.plot(steps, hf_lrs(req, steps)[:, 0], "--", color="black", lw=1, label=f"HF {name}")
    ax.set_xlabel("step")
    ax.set_ylabel("LR")
    ax.set_title(TITLES.get(name, f"--schedule {name}"), fontsize=9, pad=10)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path, format="png")
    return path


def main(argv: list[str]) -> int:
    doc = __doc__ or ""
    p = parser(PROG, doc.splitlines()[0], "\n".join(doc.splitlines()[2:]))
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                   help="folder for the PNGs, created if missing (default: docs/img/schedules)")

    def body() -> int:
        out = parse_args(p, argv).out
        out.mkdir(parents=True, exist_ok=True)
        for name in SETTINGS:
            print(draw(name, out))
        return EXIT_OK

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
