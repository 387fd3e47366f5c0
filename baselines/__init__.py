"""Baseline unlearning methods. Importing this package registers every one of them.

`mubench` finds this package through the `mubench.methods` entry point (pyproject.toml); it
never imports it directly.
"""

from baselines import (  # noqa: F401
                       bad_teacher,
                       bias_distill,
                       bias_ga,
                       bias_lora,
                       boundary,
                       ccu,
                       cup,
                       fgsm_unlearn,
                       finetune,
                       fisher,
                       fmd,
                       grad_ascent,
                       identity,
                       influence_removal,
                       l1_sparse,
                       l2ul,
                       lotus,
                       neggrad_plus,
                       pte,
                       random_label,
                       retrain,
                       salun,
                       scrub,
                       ssd,
                       uncle,
                       unsir,
)
