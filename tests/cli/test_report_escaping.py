"""File-derived text in the human reports (issue 17): shown as written, on its own line, never as markup.

Every string a report takes from a file (a checkpoint's name or link target, a pickled string, a saved config
string, a message quoting them) goes through :func:`nemo_resume.cli.report.shown`: rich markup is escaped, and
control characters (ESC, CR, LF, ...) and bidi overrides become visible escapes. Before, ``[/]`` crashed the
report (``MarkupError``), an ANSI sequence erased its warning line, and a newline forged a line of its own.
The names and link targets are covered, on both checkpoint layouts, by tests/reliability/test_damaged_values.py;
here are the helper itself and the other kinds of file text: a pickled string and a saved config string, in
real checkpoints changed by the real libraries (``torch.save`` for the pickle, ``json`` for ``io.json``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nemo_resume.cli.report import shown, stdout_console
from tests.support.fuzz import call_cli
from tests.support.hostile import PLAN_ARGS, lightning_pair

#: Every character that must not reach a terminal raw: C0, DEL, C1, the separators, the bidi marks and overrides.
UNSHOWABLE = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, 0x2028, 0x2029,
              *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_RAW = re.compile("[" + "".join(re.escape(chr(c)) for c in UNSHOWABLE if c != 0x0A) + "]")
#: A markup closing tag, an ANSI erase-line, a newline forging an error line and a right-to-left override at once.
HOSTILE = "[/]x\x1b[2K\nERROR FAKE \u202eevil"
HOSTILE_SHOWN = "[/]x\\x1b[2K\\x0aERROR FAKE \\u202eevil"


def _printed(markup: str, capsys) -> str:
    """``markup`` as the reports print it (their console, stdout a pipe)."""
    stdout_console().print(markup, soft_wrap=True)
    return capsys.readouterr().out


@pytest.mark.parametrize("code", UNSHOWABLE, ids=[f"U+{c:04X}" for c in UNSHOWABLE])
def test_every_control_and_bidi_character_is_printed_as_a_visible_escape(code, capsys):
    escape = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    assert _printed(f"[bold]{shown('a' + chr(code) + 'b')}[/]", capsys) == f"a{escape}b\n"


@pytest.mark.parametrize("text", ["[red]x[/]", "[/]", "[bold", "\\[x]", "x\\", "[link=file:///etc/passwd]x[/link]",
                                  ":fire: :thumbs_up:", "[/]\\"])
def test_markup_and_emoji_codes_in_file_text_are_printed_as_written(text, capsys):
    assert _printed(f"[red]{shown(text)}[/]: after", capsys) == f"{text}: after\n"


def _assert_shown(out: str) -> None:
    assert HOSTILE_SHOWN in out, out
    assert not _RAW.search(out), [line for line in out.splitlines() if _RAW.search(line)]
    assert not [line for line in out.splitlines() if line.lstrip().startswith("ERROR FAKE")], out


def _edit_io_json(ckpt: Path, edit) -> None:
    path = ckpt.with_name(ckpt.name.removesuffix(".ckpt")) / "context" / "io.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _nodes(node):
    """Every dict in a fiddle JSON document."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


@pytest.mark.nemo
def test_a_saved_scheduler_class_is_shown_escaped(tmp_path, incident_ckpt):
    """``io.json`` names the scheduler class; an unknown one is quoted in UNSUPPORTED_SCHEDULER."""
    pair = lightning_pair(tmp_path, incident_ckpt)

    def rename_scheduler(doc: dict) -> None:
        refs = [n for n in _nodes(doc) if n.get("type") == "pyref" and n.get("name") == "CosineAnnealingScheduler"]
        assert refs, "the fixture's io.json has no CosineAnnealingScheduler"
        for ref in refs:
            ref["name"] = HOSTILE

    _edit_io_json(pair.victim, rename_scheduler)
    doc = call_cli("inspect", [str(pair.victim), "--json"]).json
    assert [p["code"] for p in doc["checkpoints"][0]["problems"]] == ["UNSUPPORTED_SCHEDULER"]
    human = call_cli("inspect", [str(pair.victim)])
    assert human.code == 0 and human.err == "", human.err
    _assert_shown(human.out)


@pytest.mark.nemo
def test_a_pickled_folder_name_in_a_mixed_runs_error_is_shown_escaped(tmp_path, incident_ckpt):
    """The folder ModelCheckpoint saved into is a pickled string; MIXED_RUNS quotes it in inspect and plan."""
    from tests.reliability.test_damaged_values import rewrite_state

    pair = lightning_pair(tmp_path, incident_ckpt)

    def saved_into(folder: str):
        def change(state: dict) -> None:
            (callback,) = (v for k, v in state["callbacks"].items() if k.startswith("ModelCheckpoint"))
            callback["dirpath"] = folder

        return change

    def another_lr(doc: dict) -> None:
        (leaf,) = (n for n in _nodes(doc) if n.get("type") == "leaf" and n.get("paths") == ["<root>.model.optim.optimizer_fn.lr"])
        leaf["value"] = 2e-5

    rewrite_state("lightning", pair.good, saved_into("/runs/first"))
    rewrite_state("lightning", pair.victim, saved_into(HOSTILE))
    _edit_io_json(pair.victim, another_lr)
    inspected = call_cli("inspect", [str(pair.run), "--json"])
    assert inspected.json["mixed_runs"]["code"] == "MIXED_RUNS", inspected.out
    human = call_cli("inspect", [str(pair.run)])
    assert human.code == 1 and human.err == "", human.err
    _assert_shown(human.out)
    plan = call_cli("plan", [str(pair.run), *PLAN_ARGS])
    assert plan.code == 1 and plan.err == "", (plan.code, plan.err)
    _assert_shown(plan.out)
