"""Baseline unlearning methods. Importing this package registers every one of them.

`mubench` finds this package through the `mubench.methods` entry point (pyproject.toml); it
never imports it directly.
"""

from baselines import finetune, grad_ascent, identity, neggrad_plus, random_label, retrain  # noqa: F401
