"""``nemo-resume export CKPT --to OUT``: a NeMo 2 LoRA checkpoint's adapter in Hugging Face PEFT format
(``adapter_config.json`` + ``adapter_model.safetensors``), which ``peft`` loads on the Hugging Face base model.
Writes only OUT, which must not exist (docs/export.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from nemo_resume.cli.common import EXIT_OK, EXIT_PROBLEM, OneLineParser, parse_args, parser, print_json, run_cli
from nemo_resume.cli.report import shown, stdout_console
from nemo_resume.errors import NemoResumeError

EPILOG = """examples:
  # the adapter of a LoRA fine-tune's last checkpoint, for peft on the Hugging Face model it was trained on
  nemo-resume export results/lora/checkpoints/lora--step=99-last --to qwen-lora-hf --base /models/Qwen2.5-7B
  nemo-resume export CKPT --to OUT --json

exit codes: 0 exported, 1 NeMo's exporter failed (the step and reason; nothing at OUT),
            2 bad input (not a LoRA checkpoint, OUT exists, --merge)"""


def build_parser(prog: str) -> OneLineParser:
    p = parser(prog, "Export a NeMo 2 LoRA checkpoint's adapter in Hugging Face PEFT format (docs/export.md).", EPILOG)
    p.add_argument("checkpoint", type=Path, help="the LoRA checkpoint folder (context/ + weights/) a PEFT fine-tune wrote")
    p.add_argument("--to", dest="out", type=Path, required=True, help="the new folder to write (must not exist)")
    p.add_argument("--base", metavar="HF_DIR", help="the Hugging Face model the adapter applies to (a folder or a hub "
                   "id), written into adapter_config.json (default: the base the checkpoint names)")
    p.add_argument("--merge", action="store_true", help="the merged full model instead (not supported yet: refused)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    return p


def main(argv: list[str] | None = None, prog: str = "nemo-resume export") -> int:
    def body() -> int:
        args = parse_args(build_parser(prog), argv)
        from nemo_resume.hf.export import BASE_SOURCES, MERGE_REFUSED, ExportFailed, export_adapter

        if args.merge:
            raise NemoResumeError(MERGE_REFUSED)
        console = stdout_console()
        try:
            if args.json:
                result = export_adapter(args.checkpoint, args.out, base=args.base)
            else:
                from nemo_resume.cli.progress import working

                with working(f"exporting the adapter of {args.checkpoint} with NeMo's exporter"):
                    result = export_adapter(args.checkpoint, args.out, base=args.base)
        except ExportFailed as exc:
            if args.json:
                print_json({"ok": False, "step": exc.step, "error": exc.reason})
            print(f"{prog}: {exc.step} failed: {exc.reason}; nothing was written at {args.out}", file=sys.stderr)
            return EXIT_PROBLEM
        if args.json:
            print_json({"ok": True, **result.to_json()})
            return EXIT_OK
        console.print(f"[green]exported[/] {shown(result.out)}: LoRA r={result.rank}, alpha={result.alpha:g}, "
                      f"{result.tensors} tensors on {', '.join(result.target_modules)} ({result.seconds:.0f} s, "
                      f"{result.device})", soft_wrap=True)
        console.print(f"[blue]base[/] {shown(result.base_model)} (adapter_config.json's base_model_name_or_path, from "
                      f"{result.base_source})", soft_wrap=True)
        if result.base_source == BASE_SOURCES[-1]:
            console.print("[yellow]note[/] that is a NeMo checkpoint, which peft cannot load a base from: load the "
                          "Hugging Face model yourself (docs/export.md) or export again with --base HF_DIR", soft_wrap=True)
        return EXIT_OK

    return run_cli(prog, body)
