"""Building blocks for unlearning methods, written once and shared by the baselines and by
submitted methods: optimiser steps and masks (`optim`), teachers and distillation (`distill`),
adversarial examples (`adversarial`), importance estimates (`importance`), the classifier head
(`heads`), LoRA adapters (`lora`), flattened gradients and PCGrad's projection (`gradients`), the
supervised contrastive loss (`contrastive`), influence estimates (`influence`). Each module cites
the paper its piece comes from."""
