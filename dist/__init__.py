"""Many processes: torchrun runtime (process group, ranks, teardown) and the one module that
applies FSDP2 / DDP, torch.compile and activation checkpointing to a built model."""

from dist.parallelize import parallelize
from dist.runtime import Runtime, barrier, broadcast_object, finish, mean, start

__all__ = ["Runtime", "start", "mean", "barrier", "broadcast_object", "finish", "parallelize"]
