"""``--model PATH``: a local Hugging Face Qwen2 folder is read, matched to a ``--size`` and refused in one line.

Every folder is written by the real libraries while the tests run: the tiny random model of
:mod:`tests.support.tiny_qwen2` (transformers + tokenizers), its shards re-saved by ``save_pretrained``, and
preset-sized configs written by ``transformers.Qwen2Config.save_pretrained`` beside a small safetensors file (the
module never reads the weights' content). The size table is held to NeMo's ``Qwen25Config*`` classes and the
fields to what NeMo's ``HFQwen2Importer.config`` builds from the same folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from nemo_resume.errors import NemoResumeError
from nemo_resume.recipes.hf_model import (
    ARCHITECTURES,
    JSON_LIMIT,
    SHAPE_FIELDS,
    HfModel,
    preset_shape,
    read_hf_model,
    resolve_size,
)
from nemo_resume.recipes.param_names import NUM_LAYERS, TIED_EMBEDDINGS

pytestmark = pytest.mark.nemo

# Qwen/Qwen2.5-0.5B's config.json, the fields transformers' Qwen2Config takes.
QWEN25_05B = dict(num_hidden_layers=24, hidden_size=896, intermediate_size=4864, num_attention_heads=14,
                  num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rope_theta=1000000.0,
                  rms_norm_eps=1e-6, max_position_embeddings=32768, max_window_layers=24)
NEMO_CONFIGS = {"0.5b": "Qwen25Config500M", "1.5b": "Qwen25Config1P5B", "3b": "Qwen25Config3B",
                "7b": "Qwen25Config7B", "14b": "Qwen25Config14B", "32b": "Qwen25Config32B", "72b": "Qwen25Config72B"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from tests.support.tiny_qwen2 import write_tiny_qwen2

    return write_tiny_qwen2(tmp_path_factory.mktemp("hf") / "tiny")


@pytest.fixture(scope="module")
def sharded(tiny, tmp_path_factory) -> Path:
    """The tiny model re-saved by transformers in shards (``model.safetensors.index.json``)."""
    from transformers import Qwen2ForCausalLM

    out = tmp_path_factory.mktemp("hf") / "sharded"
    Qwen2ForCausalLM.from_pretrained(tiny).save_pretrained(out, max_shard_size="100KB")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tiny / name, out / name)
    return out


@pytest.fixture
def model(tiny, tmp_path) -> Path:
    """A copy of the tiny model, to damage."""
    return Path(shutil.copytree(tiny, tmp_path / "m"))


def _write_config(out: Path, tokenizer_from: Path, **fields) -> Path:
    """A config-only model: transformers' Qwen2Config(**fields) saved, a tiny safetensors file, the tiny tokenizer."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2Config

    Qwen2Config(**fields).save_pretrained(out)
    save_file({"w": torch.zeros(2)}, out / "model.safetensors")
    shutil.copy(tokenizer_from / "tokenizer.json", out / "tokenizer.json")
    return out


def _edit_config(folder: Path, **changes) -> None:
    """Set (or, given None, remove) fields of ``folder/config.json``."""
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))


def _refused(path: Path | str, *fragments: str) -> str:
    with pytest.raises(NemoResumeError) as info:
        read_hf_model(path)
    message = str(info.value)
    assert "\n" not in message and all(f in message for f in fragments), message
    return message


def test_the_tiny_model_reads_as_transformers_reads_it_with_no_size(tiny):
    from transformers import AutoConfig

    model = read_hf_model(tiny)
    hf = AutoConfig.from_pretrained(tiny)
    assert model.path == tiny.resolve() and model.size is None
    assert (model.num_layers, model.hidden_size, model.ffn_hidden_size, model.num_attention_heads,
            model.num_query_groups, model.vocab_size) == (hf.num_hidden_layers, hf.hidden_size, hf.intermediate_size,
                                                          hf.num_attention_heads, hf.num_key_value_heads,
                                                          hf.vocab_size) == (2, 64, 128, 4, 2, 128)
    assert (model.tie_word_embeddings, model.rotary_base, model.layernorm_epsilon, model.init_method_std) == (
        hf.tie_word_embeddings, hf.rope_theta, hf.rms_norm_eps, hf.initializer_range)
    assert model.weights == (tiny.resolve() / "model.safetensors",)
    assert {p.name for p in model.tokenizer} == {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    assert resolve_size(model, None) is None


def test_model_config_fields_are_what_nemos_importer_builds_from_the_folder(model):
    from nemo.collections.llm.gpt.model.qwen2 import HFQwen2Importer

    # a tied model (the importer still writes it untied), every float off transformers' default
    _edit_config(model, tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-5, initializer_range=0.01)
    fields = read_hf_model(model).model_config_fields()
    importer = HFQwen2Importer(str(model))
    importer.trust_remote_code = False  # what apply(output, trust_remote_code=False) sets before reading .config
    config = importer.config
    assert fields == {key: getattr(config, key) for key in fields}
    assert fields["share_embeddings_and_output_weights"] is False


def test_absent_optional_fields_default_as_transformers_does(model):
    from transformers import AutoConfig

    _edit_config(model, rope_theta=None, rms_norm_eps=None, initializer_range=None, tie_word_embeddings=None)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "num_key_value_heads": None}))  # null: one per head
    read, hf = read_hf_model(model), AutoConfig.from_pretrained(model)
    assert (read.num_query_groups, read.rotary_base, read.layernorm_epsilon, read.init_method_std,
            read.tie_word_embeddings) == (hf.num_key_value_heads, hf.rope_theta, hf.rms_norm_eps, hf.initializer_range,
                                          hf.tie_word_embeddings) == (4, 10000.0, 1e-6, 0.02, False)
    # absent, transformers takes its default (32), which the tiny model's 4 heads cannot have: refused, not guessed
    _edit_config(model, num_key_value_heads=None)
    assert AutoConfig.from_pretrained(model).num_key_value_heads == 32
    _refused(model, "config.json: has no num_key_value_heads (transformers would take 32, not one per head)")


def test_the_size_table_is_nemos_qwen25_configs():
    import nemo.collections.llm as llm

    assert set(ARCHITECTURES) == set(NUM_LAYERS) == set(NEMO_CONFIGS)
    for size, name in NEMO_CONFIGS.items():
        config = getattr(llm, name)()
        assert preset_shape(size) == {nemo: getattr(config, nemo) for _, nemo in SHAPE_FIELDS}, size
        assert config.share_embeddings_and_output_weights == ARCHITECTURES[size].tied == (size in TIED_EMBEDDINGS), size


@pytest.mark.parametrize("size", list(NEMO_CONFIGS))
def test_each_nemo_preset_saved_by_transformers_resolves_to_its_size(size, tiny, tmp_path):
    import nemo.collections.llm as llm

    nemo = getattr(llm, NEMO_CONFIGS[size])()
    # the published models tie 0.5b/1.5b (NeMo's presets do not): tied-ness never decides a size
    folder = _write_config(tmp_path / size, tiny, num_hidden_layers=nemo.num_layers, hidden_size=nemo.hidden_size,
                           intermediate_size=nemo.ffn_hidden_size, num_attention_heads=nemo.num_attention_heads,
                           num_key_value_heads=nemo.num_query_groups, vocab_size=nemo.vocab_size,
                           tie_word_embeddings=not nemo.share_embeddings_and_output_weights,
                           rope_theta=nemo.rotary_base, rms_norm_eps=nemo.layernorm_epsilon)
    model = read_hf_model(folder)
    assert model.size == size and resolve_size(model, None) == resolve_size(model, size) == size


def test_qwen25_05b_resolves_to_05b_and_another_size_is_refused_naming_each_field(tiny, tmp_path):
    model = read_hf_model(_write_config(tmp_path / "q", tiny, **QWEN25_05B))
    assert (model.size, model.tie_word_embeddings, model.rotary_base) == ("0.5b", True, 1000000.0)
    assert resolve_size(model, None) == resolve_size(model, "0.5b") == "0.5b"
    with pytest.raises(NemoResumeError) as info:
        resolve_size(model, "1.5b")
    assert str(info.value) == (
        f"--size 1.5b: {model.path / 'config.json'} has num_hidden_layers 24, hidden_size 896, intermediate_size 4864, "
        "num_attention_heads 14; a 1.5b has 28, 1536, 8960, 12; drop --size (it is taken from config.json) or give "
        "--size 0.5b")
    # a 7b's layers with one group per head and the smaller vocabulary: no preset has it
    mha = read_hf_model(_write_config(tmp_path / "mha", tiny, **{
        **QWEN25_05B, "num_hidden_layers": 28, "hidden_size": 3584, "intermediate_size": 18944,
        "num_attention_heads": 28, "num_key_value_heads": 28}))
    assert mha.size is None and resolve_size(mha, None) is None
    with pytest.raises(NemoResumeError, match=r"has num_key_value_heads 28, vocab_size 151936; a 7b has 4, 152064; "
                                              r"drop --size \(no preset has this architecture; the model is then "
                                              r"built from config\.json\)$"):
        resolve_size(mha, "7b")


def test_a_size_for_an_architecture_no_preset_has_is_refused(tiny):
    with pytest.raises(NemoResumeError, match=r"^--size 0\.5b: .*config\.json has num_hidden_layers 2, hidden_size 64,"
                                              r".* drop --size \(no preset has this architecture"):
        resolve_size(read_hf_model(tiny), "0.5b")
    with pytest.raises(NemoResumeError, match=r"--size 2b: not a size; give one of 0\.5b, 1\.5b"):
        resolve_size(read_hf_model(tiny), "2b")


def test_shards_named_by_an_index_are_the_weights_and_a_missing_one_is_refused(sharded, tmp_path):
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and not (sharded / "model.safetensors").exists()
    assert sorted(p.name for p in read_hf_model(sharded).weights) == shards
    broken = Path(shutil.copytree(sharded, tmp_path / "s"))
    (broken / shards[-1]).unlink()
    _refused(broken, f"{broken}/model.safetensors.index.json: names the shard {shards[-1]}, which is missing; "
                     f"copy every shard")
    # a name from the folder never reaches outside it
    (tmp_path / "outside.safetensors").write_bytes(b"x")
    escape = Path(shutil.copytree(sharded, tmp_path / "e"))
    index["weight_map"] = {k: "../outside.safetensors" for k in index["weight_map"]}
    (escape / "model.safetensors.index.json").write_text(json.dumps(index))
    _refused(escape, 'names the shard "../outside.safetensors", which is not a file in the model folder')


def test_symlinked_folder_and_weights_are_followed(model, tmp_path):
    elsewhere = tmp_path / "store.safetensors"
    (model / "model.safetensors").rename(elsewhere)
    (model / "model.safetensors").symlink_to(elsewhere)
    (tmp_path / "link").symlink_to(model)
    read = read_hf_model(tmp_path / "link")
    assert read.path == model.resolve() and read.weights == (model.resolve() / "model.safetensors",)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


# (damage done to a copy of the tiny model, what the one line says after naming the file)
DAMAGE = {
    "no config": (lambda m: (m / "config.json").unlink(), "config.json: missing, so this is no Hugging Face model"),
    "bad JSON": (lambda m: (m / "config.json").write_text('{"model_type": "qwen2",'), "config.json: not valid JSON"),
    "not an object": (lambda m: (m / "config.json").write_text("[1]"),
                      "config.json: not a JSON object (it holds a list)"),
    "huge": (lambda m: (m / "config.json").write_text('{"model_type": "qwen2"}' + " " * JSON_LIMIT),
             f"config.json: {JSON_LIMIT + 23} bytes, over the {JSON_LIMIT}-byte limit"),
    "FIFO config": (lambda m: _fifo(m / "config.json"), "config.json: a FIFO, not a regular file"),
    "device config": (lambda m: ((m / "config.json").unlink(), (m / "config.json").symlink_to("/dev/zero")),
                      "config.json: a character device, not a regular file"),
    "llama": (lambda m: _edit_config(m, model_type="llama"), 'config.json: has model_type "llama", not "qwen2"; '
                                                             "--model takes a Qwen2/Qwen2.5 model"),
    "no model_type": (lambda m: _edit_config(m, model_type=None), 'config.json: has no model_type, not "qwen2"'),
    "missing field": (lambda m: _edit_config(m, intermediate_size=None), "config.json: has no intermediate_size; "
                                                                         "save it with transformers' save_pretrained"),
    "bool for int": (lambda m: _edit_config(m, hidden_size=True), "hidden_size is true, not a positive integer"),
    "string for int": (lambda m: _edit_config(m, num_hidden_layers="2"),
                       'num_hidden_layers is "2", not a positive integer'),
    "zero": (lambda m: _edit_config(m, vocab_size=0), "vocab_size is 0, not a positive integer"),
    "float for int": (lambda m: _edit_config(m, num_key_value_heads=2.0), "num_key_value_heads is 2.0, not a positive"),
    "NaN": (lambda m: _edit_config(m, rope_theta=float("nan")), "rope_theta is NaN, not a positive finite number"),
    "string for float": (lambda m: _edit_config(m, rms_norm_eps="1e-6"), 'rms_norm_eps is "1e-6", not a positive'),
    "string for bool": (lambda m: _edit_config(m, tie_word_embeddings="no"),
                        'tie_word_embeddings is "no", not true or false'),
    "groups": (lambda m: _edit_config(m, num_key_value_heads=3),
               "num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
    "no weights": (lambda m: (m / "model.safetensors").unlink(), "no weights (none of model.safetensors, "
                                                                  "model.safetensors.index.json, pytorch_model.bin"),
    "FIFO weights": (lambda m: _fifo(m / "model.safetensors"), "model.safetensors: a FIFO, not a regular file"),
    "dangling weights": (lambda m: ((m / "model.safetensors").unlink(), (m / "pytorch_model.bin").symlink_to(
        m / "gone")), "no weights"),
    "no tokenizer": (lambda m: (m / "tokenizer.json").unlink(), "no tokenizer (none of tokenizer.json, "
                                                                "vocab.json + merges.txt, tokenizer.model)"),
    "FIFO tokenizer": (lambda m: _fifo(m / "tokenizer_config.json"), "tokenizer_config.json: a FIFO"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_wrong_or_incomplete_model_is_refused_in_one_line_naming_it(case, model):
    damage, says = DAMAGE[case]
    damage(model)
    message = _refused(model, says)
    assert str(model) in message


def test_a_missing_folder_or_a_file_is_refused(model):
    _refused(model / "nope", f"--model {model / 'nope'}: no such folder")
    _refused(model / "config.json", f"--model {model / 'config.json'}: not a folder")
    (model / "config.json").unlink()
    _refused(f"{model}/./", f"{model}/./config.json: missing")  # the path as the user gave it


def _touch(file: Path, *, mtime_ns: int) -> None:
    os.utime(file, ns=(file.stat().st_atime_ns, mtime_ns))


def test_fingerprint_changes_with_a_files_mtime_or_size_and_not_otherwise(model):
    read: HfModel = read_hf_model(model)
    weights, tokenizer = model / "model.safetensors", model / "tokenizer.json"
    before, mtime = read.fingerprint(), weights.stat().st_mtime_ns
    (model / "README.md").write_text("notes")  # nothing the import reads
    assert read_hf_model(model).fingerprint() == before
    _touch(weights, mtime_ns=mtime + 10**9)
    assert read.fingerprint() != before
    _touch(weights, mtime_ns=mtime)
    assert read.fingerprint() == before
    with weights.open("ab") as f:
        f.write(b"\0")
    _touch(weights, mtime_ns=mtime)
    assert read.fingerprint() != before
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size - 1)
    _touch(weights, mtime_ns=mtime)
    assert read.fingerprint() == before
    _touch(tokenizer, mtime_ns=tokenizer.stat().st_mtime_ns + 10**9)
    assert read.fingerprint() != before
    _touch(tokenizer, mtime_ns=tokenizer.stat().st_mtime_ns - 10**9)
    assert read.fingerprint() == before
    config = model / "config.json"  # the same size and mtime, other bytes
    text, config_mtime = config.read_text(), config.stat().st_mtime_ns
    config.write_text(text.replace('"vocab_size": 128', '"vocab_size": 129'))
    _touch(config, mtime_ns=config_mtime)
    assert read.fingerprint() != before
