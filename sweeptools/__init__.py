"""Many runs: W&B sweep files (`sweeps/*.yaml`), a local runner for the same files, plots and
verdicts (README, "Sweeps").

    python -m sweeptools.run sweeps/cpu_width_lr_adamw.yaml --jobs 2   # -> <out>/results.csv
    python -m sweeptools.plot <out>/results.csv                        # loss vs log2 LR, and the verdict
    python -m sweeptools.best <out>/results.csv                        # the winning overrides

The package is `sweeptools`, not `sweeps`: `sweeps` is the import name of W&B's sweep engine,
which `sweeptools/engine.py` imports as it is; the folder `sweeps/` holds only the sweep files.
"""
