"""Names NeMo 2, Lightning and megatron-core use on disk, in one place.

Each constant says where it comes from, so a NeMo upgrade that renames one is a one-line fix.
"""

# nl.ModelCheckpoint.UNFINISHED_CHECKPOINT_SUFFIX: "<checkpoint>-unfinished" (with ".ckpt" stripped)
# sits beside a checkpoint while it is written and is removed when the save completes.
UNFINISHED_SUFFIX = "-unfinished"
# ModelCheckpoint.CHECKPOINT_NAME_LAST suffix: the "-last" twin AutoResume looks for.
LAST_SUFFIX = "-last"
# Lightning's single-file checkpoint extension.
CKPT_EXTENSION = ".ckpt"

# A NeMo 2 checkpoint folder: weights/ (megatron-core dist checkpoint) and context/ (io.json).
WEIGHTS_DIR = "weights"
CONTEXT_DIR = "context"
# Inside weights/: megatron-core's backend marker, the torch.save of every non-sharded value,
# and torch DCP's metadata listing each shard file with byte offsets.
METADATA_JSON = "metadata.json"
COMMON_PT = "common.pt"
DCP_METADATA = ".metadata"
# metadata.json "sharded_backend" values megatron-core 0.15 can load.
KNOWN_SHARDED_BACKENDS = ("torch_dist", "zarr")
# Inside weights/ of a PEFT checkpoint: NeMo's ADAPTER_META_FILENAME (nemo/lightning/ckpt_utils.py), the base
# model checkpoint the adapters train on ({"model_ckpt_path": ...}).
ADAPTER_METADATA_JSON = "adapter_metadata.json"
# Inside context/: fiddle JSON of the trainer, model, optimizer and data configs.
IO_JSON = "io.json"

# Top-level keys of Lightning's checkpoint dict (lightning/pytorch/trainer/connectors/checkpoint_connector.py),
# which NeMo's MegatronStrategy keeps in common.pt.
GLOBAL_STEP_KEY = "global_step"
EPOCH_KEY = "epoch"
LR_SCHEDULERS_KEY = "lr_schedulers"
OPTIMIZER_STATES_KEY = "optimizer_states"  # Lightning strategies
OPTIMIZER_KEY = "optimizer"  # MegatronStrategy (a list of sharded optimizer state dicts)
PARAM_GROUPS_KEY = "param_groups"
CONSUMED_SAMPLES_KEY = "consumed_samples"
CALLBACKS_KEY = "callbacks"  # callback states, keyed by the callback's state_key ("ModelCheckpoint{...}")

# The step in a checkpoint's name, as nl.ModelCheckpoint formats "{step}" ("...-step=499-...", "smoke--step=499").
STEP_IN_NAME_RE = r"(?:^|[-_])step=(\d+)"

# Formats the inspector reports.
FORMAT_MEGATRON = "megatron-dist"
FORMAT_LIGHTNING = "lightning-ckpt"

# Byte limits on every file read from a checkpoint (nemo_resume/checkpoint/bounded_read.py, torch_zip.py),
# sized to real files: measured on the test fixtures, which tiny NeMo 2.7 / megatron-core 0.15 runs write
# (tests/conftest.py), and scaled by what grows with the model. A file over its limit is one problem on its
# checkpoint, never read.
#
# weights/.metadata, torch DCP's plain pickle: 24 KB in the fixture, 65 chunks at about 380 bytes each. It
# grows with tensor chunks: a 72B model with the fully sharded distributed optimizer has an estimated
# 120k (~50 MB).
MAX_PICKLE_BYTES = 256 * 1024 * 1024
# data.pkl inside a torch.save zip (a Lightning .ckpt, weights/common.pt): 3.7 KB and 3.0 KB in the fixtures,
# about 150 bytes per tensor, so 16 MiB holds 100k tensors (a 7B Lightning .ckpt with Adam holds ~1k).
MAX_TORCH_PICKLE_BYTES = 16 * 1024 * 1024
# The ShardedObjects inside the .distcp files (torch.save payloads torch DCP loads with torch.load(weights_only=False):
# the distributed optimizer's param groups, per-bucket sizes, each layer's _extra_state), read and walked by
# nemo_resume/checkpoint/distcp.py. Measured on NeMo MegatronStrategy runs on CPU (2 layers): 8 objects without the
# distributed optimizer, 11 with it (DP 1 and 2), each 1261 bytes (1901 for the param groups, data.pkl 671 bytes).
# They grow with layers (4 _extra_state objects per layer) and model-parallel ranks (3 per rank with the distributed
# optimizer): a 72B model (80 layers, TP 8 x PP 4) has an estimated 420. Transformer Engine's fp8 extra state adds
# a few KB to an object.
# - objects one .metadata may list:
MAX_DCP_OBJECTS = 10_000
# - one object's bytes (its window of the .distcp file):
MAX_DCP_OBJECT_BYTES = 4 * 1024 * 1024
# - all objects' bytes together (reading and walking one costs about 0.1 ms; this bounds time and memory too):
MAX_DCP_OBJECTS_BYTES = 64 * 1024 * 1024
# The opcode walk that reads a pickle before anything is built (nemo_resume/checkpoint/safe_pickle.py):
# - opcodes: 1.1k in the fixture .ckpt's data.pkl, 10.7k in the distributed optimizer's .metadata (65 chunks,
#   about 165 opcodes each); the 72B model's estimated 120k chunks need about 20M. The walk costs about 1 us per
#   opcode, so this also bounds its time (about 25 s).
MAX_PICKLE_OPCODES = 25_000_000
# - MARKs open at once: 6 in every real file (a state dict nests a handful of levels). 8 MiB of MARK opcodes
#   once cost 600 MiB.
MAX_PICKLE_MARKS = 100
# - values waiting on the stack, all MARK levels together: 70 in data.pkl, 177 in .metadata; picklers batch
#   SETITEMS/APPENDS by 1000, so a bigger state dict holds a few thousand.
MAX_PICKLE_STACK = 100_000
# - one tuple or call's elements, counting memo-shared parts once per reference (a crafted pickle can build
#   2**64 from 64 levels of sharing; hashing it never finishes), and container nesting: real states hold a few
#   dozen elements and 6 levels.
MAX_PICKLE_TUPLE_ELEMENTS = 1_000_000
MAX_PICKLE_NESTING = 1_000
# - containers and calls built (each costs memory when built: a 15 MiB pickle of empty dicts once cost 613 MiB
#   and 20 s): 2.7k in the distributed optimizer's .metadata (65 chunks, 42 each), about 100 in data.pkl; 1M holds
#   a .metadata of 24k chunks and keeps a hostile file's cost near 100 MiB and 2 s.
MAX_PICKLE_CONTAINERS = 1_000_000
# - how far a memo index may run ahead of the opcodes read: picklers number entries 0, 1, 2, ... (0 in real
#   files); CPython's unpickler sizes its memo table by the index, so LONG_BINPUT 2**28 once cost 4 GiB.
MAX_PICKLE_MEMO_AHEAD = 1024
# The other records torch reads from that zip (version, byteorder, .format_version, .storage_alignment,
# .data/serialization_id): 1 to 40 bytes each.
MAX_TORCH_RECORD_BYTES = 4 * 1024
# The zip's central directory: 1.4 KB for the fixture .ckpt's 23 entries (62 bytes each); 4 MiB holds 67k
# (a 72B model's Lightning .ckpt with Adam has ~3k) and reading them costs about 20 MiB.
MAX_ZIP_CENTRAL_DIR_BYTES = 4 * 1024 * 1024
# context/io.json is 12.7 KB in the fixtures (a full Qwen2.5 recipe's data and tokenizer config add an
# estimated tens of KB) and weights/metadata.json 119 bytes. JSON costs up to 25 bytes of Python objects per byte of text
# (a 33 MiB "[{},{},...]" took 900 MB), so this limit is also what bounds the memory: about 25 MB.
MAX_JSON_BYTES = 1024 * 1024

# How many folders below the path given the search goes: NeMo writes a checkpoint 4 levels below an experiment
# root (<root>/<name>/<version>/checkpoints/<checkpoint>), so 32 leaves room for any tree of runs above it. A
# deeper folder is reported (not searched), never the end of the command (a 1500-deep chain once overflowed
# Python's stack).
MAX_FOLDER_DEPTH = 32
# The integers NeMo, Lightning and torch keep steps, epochs and sample counts in: int64. A saved integer
# outside it (a pickle can hold 10**5000) is a problem on its checkpoint, never a number to compute with.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# NeMo's CosineAnnealing._get_lr (nemo/core/optim/lr_scheduler.py) raises this ValueError, after the
# scheduler's repr, when a group's base LR is below min_lr after warmup: the incident's error.
NEMO_BELOW_MIN_LR_TEXT = "received an initial learning rate that was lower than the minimum learning rate."

# The largest relative LR change at a resume step that is not a jump: the planner warns above it
# (LR_JUMP) and the check fails above it (no_jump_at_resume; ``--max-jump`` overrides it there).
MAX_LR_JUMP = 0.01

# "The LR at max_steps equals min_lr" and "each group gets its own schedule's LR" (planner and check
# alike): float noise only.
END_REL_TOL = 1e-9
RATIO_REL_TOL = 1e-9

#: How far a live param group's LR may be from the planned one before the run is stopped (relative): the plan
#: and NeMo's scheduler compute the same formula, and may round its last bits differently.
PLANNED_LR_REL_TOL = 1e-9
