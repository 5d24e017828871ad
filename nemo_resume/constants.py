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

# A trainer-state pickle is kilobytes to a few MiB; refuse anything larger than this
# rather than let a hostile or corrupt file exhaust memory.
MAX_PICKLE_BYTES = 256 * 1024 * 1024
# torch.save stores data.pkl uncompressed; a compressed one inflating past this is refused unread.
MAX_COMPRESSED_PICKLE_BYTES = 16 * 1024 * 1024
# context/io.json and weights/metadata.json are kilobytes; never read one larger than this.
MAX_JSON_BYTES = 64 * 1024 * 1024

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
