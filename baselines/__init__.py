"""Baseline unlearning methods. Importing this package registers every one of them.

`mubench` finds this package through the `mubench.methods` entry point (pyproject.toml); it
never imports it directly.
"""

from baselines import (bad_teacher, boundary, finetune, fisher, grad_ascent, identity, l1_sparse,  # noqa: F401
                       neggrad_plus, random_label, retrain, salun, scrub, ssd, unsir)
