"""Apply torch.compile, activation checkpointing, FSDP2 or DDP to a built model: the one place
that knows about them (model/ never does). Order (torchtitan's): compile and checkpoint each
block, then fully_shard each block, then the root."""

from __future__ import annotations

import re

import torch
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import init_device_mesh
from torch.nn.parallel import DistributedDataParallel

from errors import UserError
from parallel.runtime import Runtime

MP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# what wrappers put into parameter names: activation checkpointing (below: the GPT's blocks), DDP's
# `module.` (the step model's), FSDP1 and a whole-model torch.compile (FSDP2 and per-block compile add nothing)
_WRAPPERS = re.compile(r"(_orig_mod\.|_fsdp_wrapped_module\.|_checkpoint_wrapped_module\.|module\.)")


def unwrap_name(name: str) -> str:
    """A parameter's name as the model gives it, without the wrappers' prefixes: the name the table
    (param/) has a row for. The layers below get it from their caller (assemble, train.py)."""
    return _WRAPPERS.sub("", name)


def parallelize(model: torch.nn.Module, dcfg, rt: Runtime, device: torch.device, compile_blocks: bool) -> torch.nn.Module:
    """The module to train (the model itself, or its DDP wrapper); parameters keep their names up to
    the wrappers' prefixes (unwrap_name)."""
    if dcfg.activation_checkpointing:
        for i, block in enumerate(model.blocks):
            model.blocks[i] = checkpoint_wrapper(block)
    if compile_blocks:
        for block in model.blocks:
            block.compile()  # per block, before sharding (FSDP2 + compile: docs/platform.md §4)
    if rt.strategy == "fsdp2":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard  # dist=fsdp2 only: slow to import

        mesh = init_device_mesh(device.type, (rt.world,))
        kw = {"mesh": mesh, "reshard_after_forward": bool(dcfg.reshard_after_forward)}
        if dcfg.mixed_precision:
            if dcfg.mixed_precision not in MP_DTYPES:
                raise UserError(f"dist.mixed_precision={dcfg.mixed_precision!r}: choose null, bf16, fp16 or fp32")
            kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=MP_DTYPES[dcfg.mixed_precision], reduce_dtype=torch.float32)
        for block in model.blocks:
            fully_shard(block, **kw)
        fully_shard(model, **kw)  # the root: embeddings, final LN and the (tied) readout
        return model
    if rt.strategy == "ddp":
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model
