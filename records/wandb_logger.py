"""Optional Weights & Biases mirror of metrics.jsonl. Never required: `logger=local` (the
default) needs no account and no network."""

from __future__ import annotations

import os
from pathlib import Path

from cli import UserError


class LocalOnly:
    def log(self, record: dict, step: int) -> None:
        pass

    def summary(self, summary: dict) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbLogger:
    def __init__(self, cfg, run_dir: Path):
        import wandb
        from omegaconf import OmegaConf

        lc = cfg.logger
        if lc.mode not in ("online", "offline", "disabled"):
            raise UserError(f"logger.mode={lc.mode!r}: choose online, offline or disabled")
        os.environ.setdefault("WANDB_DIR", str(run_dir))  # offline runs land in <run dir>/wandb/
        try:
            self.run = wandb.init(
                project=lc.project, entity=lc.entity, group=lc.group, name=lc.run_name, tags=list(lc.tags),
                mode=lc.mode, dir=str(run_dir), config=OmegaConf.to_container(cfg, resolve=True),
            )
        except wandb.errors.UsageError as e:
            raise UserError(
                f"W&B could not start ({str(e).splitlines()[0]}): run `wandb login`, or use "
                "logger.mode=offline (sync later with `wandb sync`) or logger=local"
            ) from None
        except Exception as e:  # network failures surface as various types
            raise UserError(f"W&B could not start ({type(e).__name__}: {str(e).splitlines()[0]}): use logger.mode=offline or logger=local") from None

    def log(self, record: dict, step: int) -> None:
        self.run.log({k: v for k, v in record.items() if k != "step"}, step=step)

    def summary(self, summary: dict) -> None:
        for k, v in summary.items():
            if isinstance(v, (int, float, str, bool)):
                self.run.summary[k] = v

    def finish(self) -> None:
        self.run.finish()


def make_logger(cfg, run_dir: Path):
    if cfg.logger.name == "local":
        return LocalOnly()
    if cfg.logger.name == "wandb":
        return WandbLogger(cfg, run_dir)
    raise UserError(f"logger={cfg.logger.name!r}: choose local or wandb")
