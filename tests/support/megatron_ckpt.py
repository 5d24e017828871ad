"""Write a real NeMo 2 Megatron checkpoint (``weights/`` + ``context/``) on CPU, for tests.

NeMo's ``MegatronStrategy`` cannot train on CPU, but the checkpoint *format* can be produced with the real
libraries: megatron-core builds a tiny Qwen2-like ``GPTModel`` and a real megatron optimizer, and NeMo's own
``MegatronCheckpointIO.save_checkpoint`` writes them with ``megatron.core.dist_checkpointing.save``
(``torch_dist`` backend), exactly the call ``MegatronStrategy.save_checkpoint`` makes.

The training state comes from a real Lightning checkpoint written by ``nemo_resume.smoke.train`` (plain
Lightning strategy on CPU): its ``global_step``, ``epoch``, ``loops``, ``callbacks``, ``lr_schedulers`` and
the optimizer ``param_groups`` are carried over, so the resulting checkpoint tells the same LR story.

What gets written (``out_dir`` is the checkpoint folder, e.g. ``.../checkpoints/model--step=499-...``)::

    out_dir/
      weights/
        metadata.json      {"sharded_backend": "torch_dist", ..., "content_metadata": {...}}
        common.pt          torch.save of everything that is not a ShardedTensor/ShardedObject
        .metadata          torch DCP metadata (pickled)
        __0_0.distcp, __0_1.distcp   tensor data (and the pickled ShardedObjects)
      context/             copied from the NeMo-written ``<ckpt>/context`` folder next to the .ckpt

The dict handed to ``dist_checkpointing.save`` is built like ``MegatronStrategy.save_checkpoint`` builds it
(nemo 2.7.3): the Lightning checkpoint with ``state_dict`` emptied, the model's sharded state dict under
``sharded_state_dict`` (keys ``module.decoder.layers...``), ``optimizer_states`` emptied and the
optimizer's sharded state dict under ``optimizer`` (a one-element list). The optimizer is megatron-core's
*non-distributed* optimizer (``OptimizerConfig(use_distributed_optimizer=False)``, set up through NeMo's
``setup_megatron_optimizer``): per-parameter ``exp_avg``/``exp_avg_sq`` become ShardedTensors
``optimizer.state.exp_avg.module.<param>`` and the ``param_groups`` stay common data (in ``common.pt``).
NeMo's recipes use the *distributed* optimizer, whose default ``dp_reshardable`` format stores the
``param_groups`` in a ShardedObject inside the ``.distcp`` files instead; that optimizer cannot be built
without CUDA.

With ``weights_only=True`` the optimizer part, ``callbacks`` and ``lr_schedulers`` are left out, like the
checkpoint NeMo writes at ``global_step == max_steps`` without ``save_optim_on_train_end``.

Run it as a module (megatron-core may start helper processes, hence the ``__main__`` guard)::

    python -m tests.support.megatron_ckpt LIGHTNING_CKPT OUT_DIR [--weights-only] [--context DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Union

__all__ = ["write_megatron_checkpoint", "GPT_CONFIG", "CONTENT_METADATA"]

#: The tiny Qwen2-like model: GQA, QKV bias, no other biases, RMSNorm, SwiGLU, RoPE, untied output layer.
GPT_CONFIG = dict(
    num_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_query_groups=2,
    ffn_hidden_size=128,
    vocab_size=128,
    seq_length=64,
)

#: ``MegatronStrategy.sharded_state_dict_metadata`` for a non-distributed optimizer (nemo 2.7.3).
CONTENT_METADATA = {"singleton_local_shards": False, "chained_optim_avoid_prefix": True}

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def write_megatron_checkpoint(
    lightning_ckpt: Union[str, Path],
    out_dir: Union[str, Path],
    *,
    weights_only: bool = False,
    context_dir: Optional[Union[str, Path]] = None,
    seed: int = 1234,
    timeout: float = 300.0,
) -> Path:
    """Write ``out_dir/weights`` (megatron dist-checkpoint) and ``out_dir/context`` from a Lightning .ckpt.

    Runs ``python -m tests.support.megatron_ckpt`` in a subprocess (a single-process gloo group).

    Args:
        lightning_ckpt: a ``.ckpt`` written by ``nl.ModelCheckpoint`` on a plain Lightning strategy.
        out_dir: the checkpoint folder to create (must not exist, or be empty).
        weights_only: leave out optimizer state, callbacks and lr_schedulers.
        context_dir: the ``context/`` folder to copy; default: ``<lightning_ckpt minus .ckpt>/context``.
        seed: seed for the GPT weights and the fake gradients of the one optimizer step.
        timeout: seconds before the subprocess is killed.

    Returns:
        ``out_dir``. Raises ``RuntimeError`` (with the subprocess output) if it fails.
    """
    lightning_ckpt = Path(lightning_ckpt).resolve()
    out_dir = Path(out_dir).resolve()
    cmd = [sys.executable, "-m", "tests.support.megatron_ckpt", str(lightning_ckpt), str(out_dir)]
    if weights_only:
        cmd.append("--weights-only")
    if context_dir is not None:
        cmd += ["--context", str(Path(context_dir).resolve())]
    cmd += ["--seed", str(seed)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stdout[-4000:] + "\n" + proc.stderr[-8000:]).strip()
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{tail}")
    return out_dir


# --------------------------------------------------------------------------------------------------------
# Everything below runs inside the subprocess.


def _install_cpu_stand_ins() -> None:
    """The two stand-ins for CUDA-only calls that megatron-core makes while building and saving."""
    import torch

    torch.cuda.synchronize = lambda *args, **kwargs: None
    torch.cuda.current_device = lambda: "cpu"


class _CudaTensorsOnCpu:
    """Third stand-in, only while the optimizer is built: ``torch.tensor(..., device="cuda")`` -> CPU.

    megatron-core's ``FP32Optimizer.__init__`` allocates ``self._scale = torch.tensor([1.0], device='cuda')``.
    """

    def __enter__(self):
        import torch

        self._orig = torch.tensor

        def tensor(*args, **kwargs):
            if str(kwargs.get("device", "")).startswith("cuda"):
                kwargs["device"] = "cpu"
            return self._orig(*args, **kwargs)

        torch.tensor = tensor
        return self

    def __exit__(self, *exc):
        import torch

        torch.tensor = self._orig
        return False


def _init_single_process_group(tmp: Path) -> None:
    import torch.distributed as dist
    from megatron.core import parallel_state

    dist.init_process_group("gloo", init_method=f"file://{tmp / 'pg_store'}", rank=0, world_size=1)
    parallel_state.initialize_model_parallel(1, 1)


def _build_gpt(seed: int):
    import torch
    import torch.nn.functional as F
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.transformer_config import TransformerConfig

    torch.manual_seed(seed)
    config = TransformerConfig(
        num_layers=GPT_CONFIG["num_layers"],
        hidden_size=GPT_CONFIG["hidden_size"],
        num_attention_heads=GPT_CONFIG["num_attention_heads"],
        num_query_groups=GPT_CONFIG["num_query_groups"],
        ffn_hidden_size=GPT_CONFIG["ffn_hidden_size"],
        add_bias_linear=False,
        add_qkv_bias=True,
        normalization="RMSNorm",
        gated_linear_unit=True,
        activation_func=F.silu,
        use_cpu_initialization=True,
        params_dtype=torch.float32,
        bf16=False,
    )
    model = GPTModel(
        config,
        transformer_layer_spec=get_gpt_layer_local_spec(normalization="RMSNorm"),
        vocab_size=GPT_CONFIG["vocab_size"],
        max_sequence_length=GPT_CONFIG["seq_length"],
        position_embedding_type="rope",
        share_embeddings_and_output_weights=False,
    )
    return config, model


def _build_optimizer(config, model, base_lr: float, min_lr: float, weight_decay: float, **group_kwargs):
    """megatron-core's optimizer, set up through NeMo's ``setup_megatron_optimizer`` (non-distributed).

    ``group_kwargs`` (``scale_lr_cond``, ``lr_mult``, ``no_weight_decay_cond``) go to ``setup_megatron_optimizer``
    as ``MegatronOptimizerModule.optimizers`` passes them.
    """
    from types import SimpleNamespace

    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
    from megatron.core.optimizer import OptimizerConfig
    from nemo.lightning._strategy_lib import setup_megatron_optimizer

    ddp_config = DistributedDataParallelConfig(use_distributed_optimizer=False)
    ddp = DistributedDataParallel(config, ddp_config, module=model)

    class _ModelList(list):  # what setup_megatron_optimizer reads from a MegatronParallel
        pass

    models = _ModelList([SimpleNamespace(module=ddp)])
    models.ddp_config = ddp_config
    opt_config = OptimizerConfig(
        optimizer="adam",
        lr=base_lr,
        min_lr=min_lr,
        weight_decay=weight_decay,
        clip_grad=0.0,
        use_distributed_optimizer=False,
        bf16=False,
        fp16=False,
    )
    with _CudaTensorsOnCpu():
        optimizer = setup_megatron_optimizer(models, opt_config, **group_kwargs)
    return ddp, optimizer


def _main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.megatron_ckpt", description=__doc__.split("\n")[0]
    )
    parser.add_argument("lightning_ckpt", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--weights-only", action="store_true")
    parser.add_argument("--context", type=Path, default=None, help="context/ folder to copy")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)

    out_dir: Path = args.out_dir
    if out_dir.exists() and any(out_dir.iterdir()):
        parser.error(f"{out_dir} exists and is not empty")
    context_src = args.context
    if context_src is None:
        context_src = args.lightning_ckpt.with_name(args.lightning_ckpt.name.removesuffix(".ckpt")) / "context"
    if not (context_src / "io.json").is_file():
        parser.error(f"no context/io.json at {context_src}")

    _install_cpu_stand_ins()
    import copy
    from collections import OrderedDict

    import torch
    import torch.distributed as dist
    from megatron.core.dist_checkpointing.mapping import LocalNonpersistentObject
    from nemo.lightning._strategy_lib import optimizer_sharded_state_dict
    from nemo.lightning.io.pl import MegatronCheckpointIO

    # test tooling: the checkpoint is our own, written by nemo_resume.smoke (it pickles a PosixPath)
    ckpt = torch.load(args.lightning_ckpt, map_location="cpu", weights_only=False)
    has_optimizer = bool(ckpt.get("optimizer_states")) and not args.weights_only

    with tempfile.TemporaryDirectory() as tmp:
        _init_single_process_group(Path(tmp))
        try:
            config, gpt = _build_gpt(args.seed)

            class _ShardedModel:  # MegatronParallel.sharded_state_dict for one module, prefix "module."
                def sharded_state_dict(self, prefix: str = "", metadata=None):
                    return gpt.sharded_state_dict(prefix=prefix + "module.", metadata=metadata)

            checkpoint = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer_states")}
            checkpoint["state_dict"] = OrderedDict()  # MegatronStrategy.save_checkpoint empties it
            if args.weights_only:
                for key in ("optimizer_states", "lr_schedulers", "callbacks"):
                    checkpoint.pop(key, None)

            if has_optimizer:
                lightning_opt = ckpt["optimizer_states"][0]
                groups = lightning_opt["param_groups"]
                sched = (ckpt.get("lr_schedulers") or [{}])[0]
                base_lr = float(groups[0].get("initial_lr", groups[0]["lr"]))
                min_lr = float(sched.get("min_lr", 0.0))
                weight_decay = float(groups[0].get("weight_decay", 0.0))
                _ddp, optimizer = _build_optimizer(config, gpt, base_lr, min_lr, weight_decay)
                # one real step of the wrapped torch optimizer on random gradients, so exp_avg / exp_avg_sq
                # hold real state (megatron's own step() needs CUDA for the grad norm), then the run's step
                gen = torch.Generator().manual_seed(args.seed)
                step = torch.tensor(float(ckpt["global_step"]))
                mcore = optimizer.mcore_optimizer
                for sub in getattr(mcore, "chained_optimizers", [mcore]):
                    inner = sub.optimizer
                    for group in inner.param_groups:
                        for p in group["params"]:
                            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
                    inner.step()
                    for group in inner.param_groups:
                        for p in group["params"]:
                            p.grad = None
                    for state in inner.state.values():
                        state["step"] = step.clone()

                checkpoint["optimizer_states"] = {}  # MegatronStrategy.save_checkpoint clears it ...
                optim_sd = optimizer_sharded_state_dict(_ShardedModel(), optimizer, metadata=dict(CONTENT_METADATA))
                # ... and the param groups are the Lightning run's (values win over megatron's template)
                template = {k: v for k, v in optim_sd["param_groups"][0].items() if k != "params"}
                all_ids = [i for g in optim_sd["param_groups"] for i in g["params"].unwrap()]
                new_groups = []
                for i, group in enumerate(groups):
                    values = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
                    merged = {**copy.deepcopy(template), **values}
                    merged["params"] = LocalNonpersistentObject(all_ids if i == 0 else [])
                    new_groups.append(merged)
                optim_sd["param_groups"] = new_groups
                checkpoint["optimizer"] = [optim_sd]

            checkpoint["sharded_state_dict"] = _ShardedModel().sharded_state_dict(metadata=dict(CONTENT_METADATA))

            out_dir.mkdir(parents=True, exist_ok=True)
            MegatronCheckpointIO(save_ckpt_format="torch_dist").save_checkpoint(
                checkpoint, out_dir, storage_options={"content_metadata": dict(CONTENT_METADATA)}
            )
        finally:
            dist.destroy_process_group()

    shutil.copytree(context_src, out_dir / "context")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
