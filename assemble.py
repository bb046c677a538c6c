"""What a run is assembled from, checked before any work: the config composed and checked by cli,
then what needs the layers above it (the data's vocabulary, the parameterization table's rules, the
optimizer's scaling map, the schedule). train.py, the checks, `python -m param` and the sweep runner
call these; cli (the config layer) imports none of data/, param/ or optim/.

`build` is the composition root: table -> seeded model -> init -> (parallelize) -> optimizer ->
schedule, once, for train.py, bench.py, gpu_check.py and the checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import data
import parallel
from cli import check_config, check_launch, compose, warn
from errors import UserError
from model import count_params, flops_per_token
from optim import build_optimizer, make_schedule
from optim.schedule import Schedule, warmup_steps
from param import init_model
from param.rules import rules_for
from param.scaling import check
from param.table import check_param

# Hydra's own flags: those that print and exit (nothing to check), and those that take a value
# (the value is not an override: `-sc install=bash`, `-cn other`)
_HYDRA_EXITS = {"-h", "--help", "--hydra-help", "--version", "-sc", "--shell-completion", "-i", "--info",
                "--experimental-rerun"}
_HYDRA_VALUED = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name",
                 "-cd", "--config-dir"}


def check_overrides(argv: list[str]) -> None:
    """Before Hydra runs `train.py`: compose once so a typo fails in one line, not deep in Hydra.
    Hydra's own flags pass through untouched."""
    if any(a.split("=", 1)[0] in _HYDRA_EXITS for a in argv):
        return
    overrides, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a.startswith("-"):
            skip = a in _HYDRA_VALUED  # `--cfg job`: the next word is the flag's value
        elif ("=" in a or a.startswith("~")) and not a.lstrip("+~").startswith("hydra"):
            overrides.append(a)
    cfg = compose(overrides)
    printing = bool({"-c", "--cfg"} & set(argv))  # printing the config launches nothing: no warnings either
    resuming = cfg.train.resume not in (None, False, "none")  # the checkpoint's config is checked once merged
    check_run(cfg, quiet=printing or resuming)
    if not printing:
        check_launch(str(cfg.dist.strategy))
        check_data_vocab(cfg)


def check_data_vocab(cfg) -> None:
    """model.vocab_size against the data's vocabulary, where it is known without preparing
    (GPT-2's, or a prepared dir's meta.json): refused before the run writes anything."""
    if cfg.model.vocab_size is None:
        return
    where = data.data_dir(cfg.data)
    known = cfg.data.tokenizer != "gpt2" and (where / "meta.json").is_file()
    vocab_size(cfg, data.load_meta(where)["vocab_size"] if known else None)


GPT2_VOCAB = 50257  # GPT-2 BPE: 50,000 merges + 256 bytes + <|endoftext|>


def vocab_size(cfg, data_vocab: int | None = None) -> int:
    """model.vocab_size, or the data's (`data_vocab` when the caller has read meta.json already),
    padded up to model.vocab_multiple. A model.vocab_size below the data's is refused, quoting
    the number the user gave (not the padded one)."""
    given = cfg.model.vocab_size
    if given is not None and data_vocab is None and cfg.data.tokenizer == "gpt2":
        data_vocab = GPT2_VOCAB
    if given is not None and data_vocab is not None and given < data_vocab:
        raise UserError(f"model.vocab_size={given} is smaller than the data's vocabulary ({data_vocab}): "
                        "leave it null (the data's, padded to model.vocab_multiple) or give at least that")
    v = given if given is not None else data_vocab
    if v is None:
        if cfg.data.tokenizer == "gpt2":
            v = GPT2_VOCAB  # known without preparing (openwebtext may not be prepared here)
        else:
            v = data.load_meta(data.ensure_prepared(cfg.data))["vocab_size"]
    k = int(cfg.model.get("vocab_multiple") or 1)
    return -(-int(v) // k) * k


def check_run(cfg, quiet: bool = False) -> None:
    """Everything `check_config` checks, plus the parameterization x optimizer pair; `quiet`
    leaves out the warnings (values a user may mean)."""
    check_config(cfg)
    check_param(cfg)
    check(cfg.optim, rules_for(cfg.param, cfg.model.width, cfg.model.depth))
    Schedule(cfg.schedule, 1, hidden_wd=1.0)  # names, warmup, decay: checked before any work
    warm, steps = warmup_steps(cfg.schedule.warmup, cfg.train.steps), cfg.train.steps
    if warm >= steps and steps > 1 and not quiet:  # a smoke test may mean it: warned, not refused
        warn(f"schedule.warmup={cfg.schedule.warmup} is not below train.steps={steps}: the LR never gets past its "
             "warmup; lower schedule.warmup (or give a fraction of training, e.g. schedule.warmup=0.05)")


@dataclass
class Built:
    table: object
    model: object  # the GPT (its parameters are what the optimizer steps)
    step_model: object  # what the loop calls: the model, or its FSDP2 / DDP / compiled form
    optimizer: object
    schedule: object
    n_params: int  # non-embedding parameters, counted before any sharding
    flops_per_token: float


def build(cfg, vocab: int, device, seed: int, rt=None, compile_blocks: bool = False) -> Built:
    """The table (from names, before any sharding), the model drawn from `seed` and initialised from
    it, parallelized for `rt` (a parallel.Runtime; None: one process, nothing wrapped), then the
    optimizer's groups and the schedule read from the table. The order is train.py's, so the
    random draws and the bits are the same whoever builds."""
    table, model = init_model(cfg, vocab, device, seed)
    n_params, fpt = count_params(model), flops_per_token(model)
    step_model = parallel.parallelize(model, cfg.dist, rt, device, compile_blocks=compile_blocks) if rt is not None else model
    optimizer = build_optimizer(cfg, model, table, device.type, unwrap=parallel.unwrap_name)  # checkpointing renames blocks
    return Built(table, model, step_model, optimizer, make_schedule(cfg, table), n_params, fpt)

