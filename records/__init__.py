"""What a run leaves behind, written so that a crash never loses what is already there:
metrics.jsonl (one JSON object per logged step), summary.json, checkpoints/ (atomic), and
the optional W&B mirror of the same metrics."""

from records.checkpoint import (
    is_distributed_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    load_distributed,
    save_checkpoint,
    save_distributed,
)
from records.files import MetricsLog, read_jsonl, write_json_atomic
from records.wandb_logger import make_logger

__all__ = ["MetricsLog", "read_jsonl", "write_json_atomic", "save_checkpoint", "load_checkpoint", "latest_checkpoint",
           "save_distributed", "load_distributed", "is_distributed_checkpoint", "make_logger"]
