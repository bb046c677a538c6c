"""Optional Weights & Biases mirror of a run's records. Never required: `logger=local` (the
default) needs no account and no network.

A W&B run carries what the run dir carries: the resolved config, the metrics, the
parameterization table (`param_table.json` as a file and as a `wandb.Table` named
`param_table`), and `summary.json` (as a file and as the run summary, where a W&B sweep reads
its metric). It is named after its run dir (a sweep trial's dir is the trial's name) and
grouped by sweep. With `logger.log_checkpoints=true` the latest checkpoint is uploaded at the
end as an artifact of type `model`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import OmegaConf

from errors import UserError
from records.checkpoint import latest_checkpoint

TABLE_COLUMNS = ("name", "shape", "role", "block", "fan_in", "fan_out", "init", "init_std", "multiplier", "lr",
                 "weight_decay", "eps")


class LocalOnly:
    def log(self, record: dict, step: int) -> None:
        pass

    def summary(self, summary: dict) -> None:
        pass

    def finish(self) -> None:
        pass


def run_name(run_dir: Path) -> str:
    """The run dir's name; a Hydra multirun job (`multirun/<date>/<time>/<n>`) as `<time>/<n>`."""
    run_dir = Path(run_dir)
    return f"{run_dir.parent.name}/{run_dir.name}" if run_dir.name.isdigit() else run_dir.name


def run_group(run_dir: Path) -> str | None:
    """The group of a sweep's runs: W&B's WANDB_RUN_GROUP (set by `python -m sweeptools.run --wandb`),
    else the sweep dir of a Hydra multirun job (`<date>/<time>`); None for a single run."""
    if os.environ.get("WANDB_RUN_GROUP"):
        return os.environ["WANDB_RUN_GROUP"]
    run_dir = Path(run_dir)
    if run_dir.name.isdigit() and (run_dir.parent / "multirun.yaml").exists():
        return f"{run_dir.parent.parent.name}/{run_dir.parent.name}"
    return None


def table_rows(table: dict) -> list[list]:
    """param_table.json's tensors as rows of TABLE_COLUMNS (shape written 384x128, as printed)."""
    return [["x".join(map(str, t["shape"])) if c == "shape" else t.get(c) for c in TABLE_COLUMNS] for t in table["tensors"]]


class WandbLogger:
    def __init__(self, cfg, run_dir: Path):
        import wandb  # only with logger=wandb: slow to import, and never needed by a local run

        lc = cfg.logger
        if lc.mode not in ("online", "offline", "disabled"):
            raise UserError(f"logger.mode={lc.mode!r}: choose online, offline or disabled")
        self.run_dir, self.log_checkpoints = Path(run_dir), bool(lc.get("log_checkpoints", False))
        os.environ.setdefault("WANDB_DIR", str(run_dir))  # offline runs land in <run dir>/wandb/
        # W&B stages tables and artifacts in its data dir ($HOME by default, often small on a
        # cluster); this run's go with the run, where `wandb sync` of an offline run finds them
        self._own_data_dir = "WANDB_DATA_DIR" not in os.environ
        if self._own_data_dir:
            os.environ["WANDB_DATA_DIR"] = str(Path(run_dir) / "wandb" / "data")
        try:
            self.run = wandb.init(
                project=lc.project, entity=lc.entity, group=lc.group or run_group(self.run_dir),
                name=lc.run_name or run_name(self.run_dir), tags=list(lc.tags), mode=lc.mode, dir=str(run_dir),
                config=OmegaConf.to_container(cfg, resolve=True),
            )
        except wandb.errors.UsageError as e:
            raise UserError(
                f"W&B could not start ({str(e).splitlines()[0]}): run `wandb login`, or use "
                "logger.mode=offline (sync later with `wandb sync`) or logger=local"
            ) from None
        except Exception as e:  # network failures surface as various types
            raise UserError(f"W&B could not start ({type(e).__name__}: {str(e).splitlines()[0]}): use logger.mode=offline or logger=local") from None
        self._log_table()

    def _save(self, name: str) -> None:
        path = self.run_dir / name
        if path.is_file() and self.run.settings.mode != "disabled":
            self.run.save(str(path), base_path=str(self.run_dir), policy="now")

    def _log_table(self) -> None:
        """param_table.json (train.py writes it before the logger starts) as a file and a wandb.Table."""
        import wandb  # only with logger=wandb (as __init__)

        path = self.run_dir / "param_table.json"
        if not path.is_file():
            return
        table = json.loads(path.read_text())
        self._save("param_table.json")
        self._save("param_table.txt")
        self.run.log({"param_table": wandb.Table(columns=list(TABLE_COLUMNS), data=table_rows(table))}, commit=False)
        for k, v in table["globals"].items():  # m, r, multipliers, attention scale: filterable in the runs table
            if isinstance(v, (int, float, str, bool)):
                self.run.summary[f"param/{k}"] = v

    def log(self, record: dict, step: int) -> None:
        self.run.log({k: v for k, v in record.items() if k != "step"}, step=step)

    def summary(self, summary: dict) -> None:
        for k, v in summary.items():
            if isinstance(v, (int, float, str, bool)):
                self.run.summary[k] = v
        self._save("summary.json")

    def _upload_checkpoint(self) -> None:
        import wandb  # only with logger=wandb (as __init__)

        ckpt = latest_checkpoint(self.run_dir / "checkpoints")
        if ckpt is None:
            return
        name = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{self.run.name or 'run'}-model")
        art = wandb.Artifact(name, type="model", metadata={"step": int(ckpt.name.split("_")[1]), "run_dir": str(self.run_dir)})
        art.add_dir(str(ckpt), name=ckpt.name)
        self.run.log_artifact(art, aliases=["latest", ckpt.name])

    def finish(self) -> None:
        if self.log_checkpoints and self.run.settings.mode != "disabled":
            self._upload_checkpoint()
        self.run.finish()
        if self._own_data_dir:
            os.environ.pop("WANDB_DATA_DIR", None)


def make_logger(cfg, run_dir: Path):
    if cfg.logger.name == "local":
        return LocalOnly()
    if cfg.logger.name == "wandb":
        return WandbLogger(cfg, run_dir)
    raise UserError(f"logger={cfg.logger.name!r}: choose local or wandb")
