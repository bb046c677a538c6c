"""Many runs: W&B sweep files (`sweeps/*.yaml`), a local runner for the same files, plots and
verdicts (README, "Sweeps").

    python -m sweeps.run sweeps/cpu_width_lr_adamw.yaml --jobs 2   # -> <out>/results.csv
    python -m sweeps.plot <out>/results.csv                        # loss vs log2 LR, and the verdict
    python -m sweeps.best <out>/results.csv                        # the winning overrides

Run these from the repository root: W&B's search engine is also a package named `sweeps`
(loaded here under another name, see `sweeps/engine.py`).
"""
