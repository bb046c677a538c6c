"""Coordinate check: how the RMS of each activation scales with width or depth during training.

    python -m checks.coord_check param=mup optim=adamw check.axis=width check.sizes=[64,128,256,512]
    python -m checks.coord_check param=completep check.axis=depth check.sizes=[2,4,8,16,32]
    python -m checks.coord_check param=sp --json          # {"slopes": {...}, "verdict": {...}}
    python -m checks.coord_check --compare sp,mup check.quantities=[h_L,logits] --figure docs/x.png
    python -m checks.coord_check --matrix --markdown      # every parameterization x tied/untied: the README table

The protocol is the spectral paper's (Zheng et al., arXiv 2603.00541, §5 and Fig. 1a,b; conf/check/coord.yaml): train `train.steps`
steps (10) on Shakespeare windows and, before the first step and after each one, run a fixed
probe batch through the model with forward hooks recording the RMS (‖x‖_R = ‖x‖_2/√n, the spectral paper's §2.1) of

- embedding:   the embedding output (the input of block 0);
- attn, mlp:   each block's attention / MLP branch output, after its multipliers (α_l included),
               averaged over blocks (per block: attn.<i>, mlp.<i> in values.csv);
- h_L:         the residual stream after the last block (the input of the final LayerNorm);
- logits:      the logits, after the readout multiplier;
- attn_update, mlp_update: ‖α_l(F_l,t(x_0) − F_l,0(x_0))‖_R, the change of a branch caused by
               its weight updates alone, on its step-0 input x_0 (the α·ΔF of the spectral paper's Cond. 3.1).

Also recorded, not judged (values.csv, and each seed's values in check.json's "runs"): `loss`
(the probe batch's loss), `train_loss` and `grad_norm` (each training step's loss and global
gradient norm before clipping), `blocks_sum` (‖h_L − embedding‖_R, what the blocks add to the
residual stream) and `embedding_update` (the embedding output's change since step 0).

Values are averaged over `check.seeds`; the slope is a least-squares fit of log2 RMS against
log2 size. The verdict judges the claims in `claims`. A run whose probe loss rises more than
`check.spike` nats (1.0) above its best so far has spiked at that step: its (size, seed, step)
cell is left out of the judged mean, and the verdict names it; a claim with no trained step left
to judge is UNDECIDED. The clip, 5.0 (the paper's 1.0 acts on ordinary steps at some sizes only),
caps spikes. docs/coord_check.md says why, and why steps 1..N/2-1 are not judged.
"""

from __future__ import annotations

import math
import re
import sys

import torch

from checks import runner as check_cli, core as checks

QUANTITIES = ("embedding", "attn", "mlp", "h_L", "logits", "attn_update", "mlp_update")
BRANCHES = ("attn", "mlp")


def steps(cfg) -> list[int]:
    return list(range(int(cfg.train.steps) + 1))


def _rms(t: torch.Tensor) -> float:
    return t.float().pow(2).mean().sqrt().item()


class Recorder:
    """Forward hooks that keep the tensors a probe forward produces, only while `on`."""

    def __init__(self, model):
        self.on, self.seen = False, {}
        model.blocks[0].register_forward_pre_hook(self._keep("embedding", inputs=True))
        model.ln_f.register_forward_pre_hook(self._keep("h_L", inputs=True))
        for i, block in enumerate(model.blocks):
            for b in BRANCHES:
                branch = getattr(block, b)
                branch.register_forward_pre_hook(self._keep(f"{b}_in.{i}", inputs=True))
                branch.register_forward_hook(self._keep(f"{b}.{i}"))

    def _keep(self, key: str, inputs: bool = False):
        if inputs:
            return lambda module, args: self._store(key, args[0])
        return lambda module, args, out: self._store(key, out)

    def _store(self, key: str, t: torch.Tensor) -> None:
        if self.on:
            self.seen[key] = t.detach()


@torch.no_grad()
def _probe(s: checks.Setup, rec: Recorder, x, y, start: dict) -> dict[str, float]:
    """RMS of every quantity on the probe batch; `start` keeps (x_0, F_0) of each branch at step 0."""
    model = s.model
    model.eval()
    rec.on = True
    logits, loss = model(x, y)
    rec.on = False
    depth = len(model.blocks)
    emb, h = rec.seen["embedding"], rec.seen["h_L"]
    v = {"embedding": _rms(emb), "h_L": _rms(h), "logits": _rms(logits), "loss": loss.item(),
         "blocks_sum": _rms(h - emb)}  # Σ_l α_l F_l: what the blocks add to the residual stream
    if not start.get("done"):
        start["embedding"] = emb
    else:
        v["embedding_update"] = _rms(emb - start["embedding"])  # the embedding's own change since step 0
    for b in BRANCHES:
        for i in range(depth):
            v[f"{b}.{i}"] = _rms(rec.seen[f"{b}.{i}"])
            if not start.get("done"):
                start[f"{b}.{i}"] = (rec.seen[f"{b}_in.{i}"], rec.seen[f"{b}.{i}"])
                continue
            x0, f0 = start[f"{b}.{i}"]
            v[f"{b}_update.{i}"] = _rms(getattr(model.blocks[i], b)(x0) - f0)  # α ΔF on a fixed input (Cond. 3.1)
        v[b] = sum(v[f"{b}.{i}"] for i in range(depth)) / depth
        if start.get("done"):
            v[f"{b}_update"] = sum(v[f"{b}_update.{i}"] for i in range(depth)) / depth
    start["done"] = True
    model.train()
    return v


def measure(cfg, seed: int) -> dict[str, list[float]]:
    """One model at one size: {quantity: [value at step 0, 1, ..., train.steps]} (NaN: none)."""
    s = checks.setup(cfg, seed)
    rec = Recorder(s.model)
    x, y = checks.probe_batch(s)
    start: dict = {}
    n = int(cfg.train.steps)
    out: dict[str, list[float]] = {}
    for t in range(n + 1):
        for q, value in _probe(s, rec, x, y, start).items():
            out.setdefault(q, [float("nan")] * (n + 1))[t] = value
        if t < n:
            out.setdefault("train_loss", [float("nan")] * (n + 1))[t + 1] = checks.train_step(s, t)
            out.setdefault("grad_norm", [float("nan")] * (n + 1))[t + 1] = s.grad_norm
    return out


def claims(cfg, family: str, alpha: float | None) -> list[checks.Claim]:
    """What is asserted, with tol = check.tolerance and g = check.grow_min:

    width, μP family (mup, depth_mup, completep, spectral): every quantity's slope is 0 ± tol
        (activations, logits and branch updates stay Θ(1) in width) at init and at every step
        from checks.judge_from (N/2) on, except the logits at step 0, which need only not grow
        (slope <= tol): with the readout at σ and a 1/m multiplier (TP5 Table 8) they vanish as
        m^-1/2 at init. The steps in between are the transient, recorded but not judged: the
        random readout's init term still shrinks the logits at step 1 (slope -0.24 untied), and
        at LR 2^-7 an untied model's early loss spikes land on random (width, seed) cells
        (docs/coord_check.md). A wrong width exponent grows with the steps and is judged in full.
    Spiked cells (checks.spikes) are left out of every judged mean, on either axis.
    Every flatness band is widened by check.seed_band standard errors of the slope (the seeds'
    spread); growth claims are not.
    width, SP: the logits and h_L slopes at the last step are >= g (Adam's update of a width-n
        matrix is aligned with its input and grows ∝ n, TP5 §5; the spectral paper's Fig. 1a).
    depth, branch exponent alpha (CompleteP / spectral k>=2: 1; depth-μP / spectral k=1: 1/2):
        h_L slope 0 ± tol after every step (1..N, the spectral paper's metric; at init h_L is the
        embedding plus L random branches of size 1/L^alpha, which adds a part falling off as
        L^(1/2-alpha) at small L); attn and mlp slope -alpha ± tol at step 0
        (L^alpha·‖α_l F_l‖_R flat at init); attn_update and mlp_update slope -1 ± tol
        (L·‖α_l ΔF_l‖_R flat) at every step for alpha = 1, and at step 1 otherwise: the k=1 rules
        (Cond. B.1) bound one matrix per branch, and leave the second-order term α·ΔW_2·ΔW_1 of
        GPT-2's two-matrix branches at L^-3/2, below 1/L, so shallow models pull ahead as training
        goes on (the spectral paper's point, §3.3 and Fig. 2). At L = 2..32 over 10 steps this
        also tilts h_L (slope -0.46 at step 10 under depth_mup), and the check says FAIL.
    depth, SP: the h_L slope at the last step is >= g (no branch scaling: the blocks' updates add up).
    mup in depth (no alpha) and any other case: no claim (the slopes are still printed).
    """
    tol, g = float(cfg.check.tolerance), float(cfg.check.grow_min)
    every = steps(cfg)
    after = every[1:]  # updates exist from step 1 on
    if cfg.check.axis == "width":
        if family == "sp":
            return [checks.grows(q, "SP: grows with width under Adam (TP5 §5)", g) for q in ("logits", "h_L")]
        if family != "mup":
            return []
        judged = every[checks.judge_from(cfg):]
        out = [checks.flat(q, 0.0, tol, "flat in width (TP5; spectral paper Fig. 1a)", judged if q in ("logits", "attn_update", "mlp_update") else (0, *judged))
               for q in QUANTITIES]
        out.append(checks.Claim("logits", -math.inf, tol, "O(1) at init (vanish as m^-1/2 with TP5 Table 8's 1/m)", (0,)))
        return out
    if family == "sp":
        return [checks.grows("h_L", "SP: residual stream grows in depth (spectral paper Fig. 1b)", g)]
    if family != "mup" or alpha is None:
        return []
    out = [checks.flat("h_L", 0.0, tol, "residual stream flat in depth (spectral paper Fig. 1b)", after)]
    for b in BRANCHES:
        out.append(checks.flat(b, -alpha, tol, f"L^{alpha:g}·‖α F‖_R flat at init (Cond. 3.1 / B.1)", (0,)))
        first = after if alpha == 1.0 else after[:1]
        out.append(checks.flat(f"{b}_update", -1.0, tol, "L·‖α ΔF‖_R flat (Cond. 3.1 / B.1)", first))
    return out


def _label(axis: str) -> str:
    return "width" if axis == "width" else "depth L"


def plot(sweep: checks.Sweep, quantities, out) -> None:
    """One PNG per quantity: log2 RMS against size, one line per step, the legend outside."""
    plt = check_cli.pyplot()
    for q in quantities:
        fig, ax = plt.subplots(figsize=(5.0, 3.2), layout="constrained")
        lines = {f"step {t}": sweep.mean[q][i] for i, t in enumerate(sweep.steps)}
        check_cli.loglog_panel(ax, sweep.sizes, lines, f"{q} (slope at the last step {checks.slope(sweep, q, -1):+.2f})",
                               _label(sweep.axis), f"log2 RMS of {q}")
        check_cli.save_panel(fig, ax, sweep, out / f"{q}.png")


def plot_compare(sweeps, quantities, path) -> None:
    """One figure: a column per parameterization, a row per quantity, shared y range per row."""
    plt = check_cli.pyplot()
    fig, axes = plt.subplots(len(quantities), len(sweeps), figsize=(3.2 * len(sweeps) + 1.1, 2.6 * len(quantities)),
                             squeeze=False, sharey="row", layout="constrained")
    for col, (name, sweep) in enumerate(sweeps):
        for row, q in enumerate(quantities):
            lines = {f"step {t}": sweep.mean[q][i] for i, t in enumerate(sweep.steps)}
            slope = checks.slope(sweep, q, -1)
            check_cli.loglog_panel(axes[row][col], sweep.sizes, lines, f"{name}: {q} (slope at step {sweep.steps[-1]}: {slope:+.2f})",
                                   _label(sweep.axis), f"log2 RMS of {q}" if col == 0 else "")
    for row in axes:
        check_cli.octave_ticks(row[0])  # the row shares its y axis
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside right center", fontsize=7)
    s = sweeps[0][1]
    fig.suptitle("coordinate check: " + re.sub(r"param=\S+ (k=\d+ )?| claim=\S+", "", s.title.split(": ", 1)[-1]), fontsize=8)
    check_cli.save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    check_cli.entry(sys.modules[__name__], "coord_check")
