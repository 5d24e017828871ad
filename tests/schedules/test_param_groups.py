"""LrMultOptimizerModule's cross-rank group alignment on a real two-rank gloo group.

Pipeline stages hold different layers, so with a layer-wise decay each rank finds other multipliers; megatron-core's
distributed checkpoint needs the same groups, in one order, on every rank (empty ones included).
"""

from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.nemo

# Two stages of a 4-layer model with a decay: each has its own layers' keys, and both have the no-decay norm's.
LOCAL_KEYS = {0: [(1.0, 0.9, False, False), (0.0, 1.0, False, False)],
              1: [(0.0, 1.0, False, False), (1.0, 0.81, False, False), (1.0, 0.9, False, False)]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, out) -> None:
    import torch.distributed as dist

    from nemo_resume.schedules.param_groups import aligned_keys

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        out.put((rank, aligned_keys(LOCAL_KEYS[rank])))
    finally:
        dist.destroy_process_group()


def test_every_rank_gets_every_key_in_one_order():
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, out)) for r in (0, 1)]
    for p in procs:
        p.start()
    got = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert got[0] == got[1] == [(1.0, 0.9, False, False), (0.0, 1.0, False, False), (1.0, 0.81, False, False)]
