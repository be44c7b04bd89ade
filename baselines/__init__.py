"""Baselines SVD training is compared with: TRP, filter pruning (L1, SFP, FPGM), post-hoc SVD.
Each is a :class:`svdbench.methods.Method`, found by the config's ``_target_``."""
