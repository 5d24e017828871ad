"""A local Hugging Face Qwen2 folder for ``--model``: checked before anything is imported or launched.

NeMo's ``HFQwen2Importer`` reads ``config.json`` with ``AutoConfig`` and the weights with
``AutoModelForCausalLM.from_pretrained``; a wrong folder fails there deep in a traceback, minutes in. This module
reads the same fields (``HFQwen2Importer.config`` in ``nemo/collections/llm/gpt/model/qwen2.py``) with json and
pathlib only, and refuses a wrong or incomplete model in one line. The folder is someone else's data: JSON is read
through :mod:`nemo_resume.checkpoint.bounded_read` (regular files only, within :data:`JSON_LIMIT`), weights and
tokenizer files are opened (never read) to prove them readable, and no name from the folder reaches outside it.

It also says which ``--size`` preset has the model's architecture (:data:`ARCHITECTURES`), so ``--size`` can be
taken from ``config.json`` or checked against it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.checkpoint.bounded_read import RefusedFile, open_regular, read_bytes
from nemo_resume.errors import NemoResumeError

# A Qwen2.5 config.json is under 1 KiB; the 72B's model.safetensors.index.json (963 tensors) about 80 KiB.
JSON_LIMIT = 4 * 1024 * 1024
SAVE = "save it with transformers' save_pretrained"


@dataclass(frozen=True)
class Architecture:
    """A ``--size`` preset: the Qwen25Config* the recipe builds. All but ``tied`` decide whether weights fit it."""

    num_layers: int
    hidden_size: int
    ffn_hidden_size: int
    num_attention_heads: int
    num_query_groups: int
    vocab_size: int
    tied: bool = False  # share_embeddings_and_output_weights


# --size -> the Qwen25Config* the recipe builds, the one size table (param_names' NUM_LAYERS and TIED_EMBEDDINGS
# are read from it); tests/recipes/test_hf_model.py holds it to NeMo's classes. vocab_size: NeMo's presets have
# 151936 for 0.5b/1.5b/3b and 152064 from 7b up, as the published Qwen2.5 config.json files do (Qwen2.5-7B and -14B
# are 152064 too). Tied embeddings are not part of a match: NeMo's 0.5b/1.5b presets are untied while the published
# models are tied, and HFQwen2Importer always writes an untied model (lm_head copied into output_layer).
ARCHITECTURES: dict[str, Architecture] = {
    "0.5b": Architecture(24, 896, 4864, 14, 2, 151936),
    "1.5b": Architecture(28, 1536, 8960, 12, 2, 151936),
    "3b": Architecture(36, 2048, 11008, 16, 2, 151936, tied=True),
    "7b": Architecture(28, 3584, 18944, 28, 4, 152064),
    "14b": Architecture(48, 5120, 13824, 40, 8, 152064),
    "32b": Architecture(64, 5120, 27648, 40, 8, 152064),
    "72b": Architecture(80, 8192, 29568, 64, 8, 152064),
}
# (config.json name, HfModel / NeMo name) of each field a size is matched on, in the order messages name them.
SHAPE_FIELDS = (("num_hidden_layers", "num_layers"), ("hidden_size", "hidden_size"),
                ("intermediate_size", "ffn_hidden_size"), ("num_attention_heads", "num_attention_heads"),
                ("num_key_value_heads", "num_query_groups"), ("vocab_size", "vocab_size"))

# What from_pretrained loads, in the order it looks (transformers' _get_resolved_checkpoint_files): (file, index).
WEIGHT_FORMATS = (("model.safetensors", "model.safetensors.index.json"),
                  ("pytorch_model.bin", "pytorch_model.bin.index.json"))
# A tokenizer AutoTokenizer can load: any one of these sets of files.
TOKENIZER_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json")
# Beside config.json, what the import reads (GenerationConfig.from_pretrained) or uses to find the weights.
CONFIG_FILES = ("config.json", "generation_config.json", *(index for _, index in WEIGHT_FORMATS))


def preset_shape(size: str) -> dict[str, int]:
    """The fields of :data:`SHAPE_FIELDS` (NeMo names) a ``--size`` preset has."""
    return {nemo: getattr(ARCHITECTURES[size], nemo) for _, nemo in SHAPE_FIELDS}


@dataclass(frozen=True)
class HfModel:
    """A Qwen2 folder that passed :func:`read_hf_model`: its ``config.json`` fields and the files the import reads."""

    path: Path  # the folder, resolved
    num_layers: int  # num_hidden_layers
    hidden_size: int
    ffn_hidden_size: int  # intermediate_size
    num_attention_heads: int
    num_query_groups: int  # num_key_value_heads (num_attention_heads when null, as transformers does)
    vocab_size: int
    tie_word_embeddings: bool
    rotary_base: float  # rope_theta
    layernorm_epsilon: float  # rms_norm_eps
    init_method_std: float  # initializer_range
    weights: tuple[Path, ...]
    tokenizer: tuple[Path, ...]
    size: str | None  # the --size preset with this architecture, None if none has it

    def shape(self) -> dict[str, int]:
        """The fields of :data:`SHAPE_FIELDS` (NeMo names) this model has."""
        return {nemo: getattr(self, nemo) for _, nemo in SHAPE_FIELDS}

    def model_config_fields(self) -> dict[str, Any]:
        """The NeMo ``Qwen2Config`` fields ``HFQwen2Importer.config`` sets from ``config.json``, for the recipe's
        model (``share_embeddings_and_output_weights`` is False as the importer always writes it)."""
        return {**self.shape(), "init_method_std": self.init_method_std, "layernorm_epsilon": self.layernorm_epsilon,
                "rotary_base": self.rotary_base, "share_embeddings_and_output_weights": False}

    def fingerprint(self) -> str:
        """sha256 over ``config.json``'s bytes and (relative name, size, mtime_ns) of every weight, tokenizer and
        config file: an import is reused while this is unchanged."""
        config = _read_bounded(self.path / "config.json", str(self.path / "config.json"))
        digest = hashlib.sha256(len(config).to_bytes(8, "big") + config)
        configs = tuple(p for name in CONFIG_FILES if (p := self.path / name).exists())
        for file in sorted({*self.weights, *self.tokenizer, *configs}):
            try:
                st = file.stat()
            except OSError as e:
                raise NemoResumeError(f"{file}: cannot be read ({e.strerror or e}); {SAVE}") from None
            digest.update(json.dumps([str(file.relative_to(self.path)), st.st_size, st.st_mtime_ns]).encode() + b"\n")
        return digest.hexdigest()


def read_hf_model(path: Path | str) -> HfModel:
    """The Qwen2 model in folder ``path``, with everything the import needs present and readable.

    Raises:
        NemoResumeError: one line naming the file or field and what to do (see the module docstring).
    """
    shown = str(path)
    try:
        folder = Path(path).expanduser().resolve(strict=True)
    except FileNotFoundError:
        raise NemoResumeError(f"--model {shown}: no such folder; give the folder a Hugging Face Qwen2 model was saved "
                              f"to (config.json, weights, tokenizer)") from None
    except (OSError, RuntimeError) as e:  # a symlink loop is a RuntimeError before Python 3.13
        raise NemoResumeError(f"--model {shown}: cannot be read ({e}); give a readable model folder") from None
    if not folder.is_dir():
        raise NemoResumeError(f"--model {shown}: not a folder; give the folder holding config.json, not a file")
    config_shown = os.path.join(shown, "config.json")
    if not (folder / "config.json").exists():
        raise NemoResumeError(f"{config_shown}: missing, so this is no Hugging Face model folder; {SAVE}")
    config = _json_object(folder / "config.json", config_shown)
    _require_qwen2(config, config_shown)
    ints = {nemo: _positive_int(config, hf, config_shown) for hf, nemo in SHAPE_FIELDS if hf != "num_key_value_heads"}
    heads = ints["num_attention_heads"]
    # transformers' Qwen2Config takes null as one group per head, but an absent field as its default, 32
    if "num_key_value_heads" not in config:
        raise NemoResumeError(f"{config_shown}: has no num_key_value_heads (transformers would take 32, not one per "
                              f"head); add it or {SAVE}")
    groups = heads if config["num_key_value_heads"] is None else _positive_int(config, "num_key_value_heads",
                                                                               config_shown)
    if heads % groups:
        raise NemoResumeError(f"{config_shown}: num_attention_heads {heads} is not a multiple of num_key_value_heads "
                              f"{groups}, which no Qwen2 model can be; {SAVE}")
    shape = {nemo: groups if hf == "num_key_value_heads" else ints[nemo] for hf, nemo in SHAPE_FIELDS}
    return HfModel(
        path=folder, **shape,
        tie_word_embeddings=_bool(config, "tie_word_embeddings", config_shown, default=False),
        rotary_base=_positive_float(config, "rope_theta", config_shown, default=10000.0),
        layernorm_epsilon=_positive_float(config, "rms_norm_eps", config_shown, default=1e-6),
        init_method_std=_positive_float(config, "initializer_range", config_shown, default=0.02),
        weights=_weights(folder, shown), tokenizer=_tokenizer(folder, shown),
        size=next((s for s in ARCHITECTURES if preset_shape(s) == shape), None),
    )


def resolve_size(model: HfModel, size: str | None) -> str | None:
    """The ``--size`` to build: ``size`` if it has the model's architecture, else the model's own (None: no preset
    has it, and the recipe builds the model from ``config.json``).

    Raises:
        NemoResumeError: ``size`` is another architecture, naming each field that differs and the fix.
    """
    if size is None:
        return model.size
    if size not in ARCHITECTURES:
        raise NemoResumeError(f"--size {size}: not a size; give one of {', '.join(ARCHITECTURES)} or drop --size")
    mine, preset = model.shape(), preset_shape(size)
    differ = [(hf, nemo) for hf, nemo in SHAPE_FIELDS if mine[nemo] != preset[nemo]]
    if not differ:
        return size
    fix = (f"drop --size (it is taken from config.json) or give --size {model.size}" if model.size else
           "drop --size (no preset has this architecture; the model is then built from config.json)")
    raise NemoResumeError(
        f"--size {size}: {model.path / 'config.json'} has {', '.join(f'{hf} {mine[nemo]}' for hf, nemo in differ)}; "
        f"a {size} has {', '.join(str(preset[nemo]) for _, nemo in differ)}; {fix}"
    )


def _value(value: object) -> str:
    """A value from the folder as one short line (its JSON, which escapes newlines)."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_bounded(file: Path, shown: str) -> bytes:
    try:
        return read_bytes(file, JSON_LIMIT)
    except RefusedFile as e:
        raise NemoResumeError(f"{shown}: {e.why}; {SAVE}") from None
    except OSError as e:
        raise NemoResumeError(f"{shown}: cannot be read ({e.strerror or e}); make it readable or {SAVE}") from None


def _json_object(file: Path, shown: str) -> dict[str, Any]:
    raw = _read_bounded(file, shown)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise NemoResumeError(f"{shown}: not valid JSON ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                              f"{SAVE}") from None
    if not isinstance(data, dict):
        raise NemoResumeError(f"{shown}: not a JSON object (it holds a {type(data).__name__}); {SAVE}")
    return data


def _require_qwen2(config: dict[str, Any], shown: str) -> None:
    model_type = config.get("model_type")
    if model_type != "qwen2":
        has = f"model_type {_value(model_type)}" if "model_type" in config else "no model_type"
        raise NemoResumeError(f"{shown}: has {has}, not \"qwen2\"; --model takes a Qwen2/Qwen2.5 model, the one kind "
                              f"NeMo's HFQwen2Importer converts")


def _field(config: dict[str, Any], key: str, shown: str, default: object) -> object:
    """``config[key]``, else ``default`` (transformers' own), else (None: a field it has no default for) refused."""
    if key in config:
        return config[key]
    if default is None:
        raise NemoResumeError(f"{shown}: has no {key}; {SAVE} (it writes every field)")
    return default


def _positive_int(config: dict[str, Any], key: str, shown: str) -> int:
    value = _field(config, key, shown, None)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise NemoResumeError(f"{shown}: {key} is {_value(value)}, not a positive integer; fix it or {SAVE}")
    return value


def _positive_float(config: dict[str, Any], key: str, shown: str, default: float) -> float:
    value = _field(config, key, shown, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise NemoResumeError(f"{shown}: {key} is {_value(value)}, not a positive finite number; fix it or {SAVE}")
    return float(value)


def _bool(config: dict[str, Any], key: str, shown: str, default: bool) -> bool:
    value = _field(config, key, shown, default)
    if not isinstance(value, bool):
        raise NemoResumeError(f"{shown}: {key} is {_value(value)}, not true or false; fix it or {SAVE}")
    return value


def _readable(file: Path, shown: str, fix: str) -> Path:
    """``file`` if it opens as a regular file (a symlink to one is fine); nothing of it is read."""
    try:
        with open_regular(file):
            return file
    except RefusedFile as e:
        raise NemoResumeError(f"{shown}: {e.why}; {fix}") from None
    except OSError as e:
        raise NemoResumeError(f"{shown}: cannot be read ({e.strerror or e}); {fix}") from None


def _shards(folder: Path, index: str, shown: str) -> tuple[Path, ...]:
    """The files an index's ``weight_map`` names, each a plain name in ``folder`` (from_pretrained joins them)."""
    index_shown = os.path.join(shown, index)
    weight_map = _json_object(folder / index, index_shown).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise NemoResumeError(f"{index_shown}: has no weight_map of tensor names to shard files; {SAVE}")
    shards = []
    for name in dict.fromkeys(weight_map.values()):
        if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise NemoResumeError(f"{index_shown}: names the shard {_value(name)}, which is not a file in the "
                                  f"model folder; {SAVE}")
        if not (folder / name).exists():
            raise NemoResumeError(f"{index_shown}: names the shard {name}, which is missing; copy every shard the "
                                  f"index names into {shown}, or {SAVE}")
        shards.append(folder / name)
    return tuple(shards)


def _weights(folder: Path, shown: str) -> tuple[Path, ...]:
    for single, index in WEIGHT_FORMATS:
        if (folder / single).exists():
            files: tuple[Path, ...] = (folder / single,)
        elif (folder / index).exists():
            files = _shards(folder, index, shown)
        else:
            continue
        fix = f"copy the model again, or {SAVE}"
        return tuple(_readable(f, os.path.join(shown, f.name), fix) for f in files)
    names = ", ".join(name for pair in WEIGHT_FORMATS for name in pair)
    raise NemoResumeError(f"--model {shown}: no weights (none of {names}); {SAVE}")


def _tokenizer(folder: Path, shown: str) -> tuple[Path, ...]:
    found = {name for name in TOKENIZER_FILES if (folder / name).exists()}
    if not any(found.issuperset(s) for s in TOKENIZER_SETS):
        sets = ", ".join(" + ".join(s) for s in TOKENIZER_SETS)
        raise NemoResumeError(f"--model {shown}: no tokenizer (none of {sets}); save the tokenizer into it too "
                              f"(tokenizer.save_pretrained)")
    fix = "copy the tokenizer again (tokenizer.save_pretrained)"
    return tuple(_readable(folder / n, os.path.join(shown, n), fix) for n in TOKENIZER_FILES if n in found)
