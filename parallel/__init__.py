"""Many processes: torchrun runtime (process group, ranks, teardown) and the one module that
applies FSDP2 / DDP, torch.compile and activation checkpointing to a built model."""

from parallel.parallelize import parallelize, unwrap_name
from parallel.runtime import Runtime, barrier, broadcast_object, finish, mean, start

__all__ = ["Runtime", "start", "mean", "barrier", "broadcast_object", "finish", "parallelize", "unwrap_name"]
