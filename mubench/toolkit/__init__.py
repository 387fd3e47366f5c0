"""Building blocks for unlearning methods, written once and shared by the baselines and by
submitted methods: optimiser steps and masks (`optim`), teachers and distillation (`distill`),
adversarial examples (`adversarial`), importance estimates (`importance`), the classifier head
(`heads`). Each module cites the paper its piece comes from."""
