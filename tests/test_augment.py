"""Whole-batch crop-and-flip augmentation (mubench/harness/training.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mubench.harness.training import crop_flip, train_model
from mubench.tasks.spec import Recipe


def test_each_image_is_a_padded_crop_possibly_mirrored():
    x = torch.arange(2 * 3 * 6 * 5, dtype=torch.float32).view(2, 3, 6, 5) + 1  # no zero: padding is visible
    out = crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    padded = F.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        matches = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)
                   if torch.equal(out[i], (lambda c: c.flip(2) if flip else c)(padded[i, :, dy:dy + 6, dx:dx + 5]))]
        assert matches, f"image {i} is not a crop of its padded self"
    # the same generator state gives the same batch; another state another batch
    assert torch.equal(crop_flip(x, torch.Generator().manual_seed(0), pad=2), out)
    assert not torch.equal(crop_flip(x.repeat(8, 1, 1, 1), torch.Generator().manual_seed(5), pad=2),
                           crop_flip(x.repeat(8, 1, 1, 1), torch.Generator().manual_seed(6), pad=2))


def test_flip_rate_is_about_one_half():
    x = torch.rand(1, 1, 4, 4).expand(2000, 1, 4, 4).contiguous()
    out = crop_flip(x, torch.Generator().manual_seed(0), pad=0)  # no crop: only flips change an image
    flipped = (out != x).flatten(1).any(dim=1).float().mean()
    assert 0.45 < float(flipped) < 0.55


def test_augmented_training_runs_and_is_reproducible():
    x, y = torch.rand(64, 3, 8, 8), torch.randint(0, 2, (64,))
    recipe = Recipe(optimizer="sgd", lr=0.1, epochs=2, batch_size=16, augment="crop_flip")

    def fit() -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
        train_model(model, x, y, recipe, torch.Generator().manual_seed(3))
        return model[1].weight.detach().clone()

    assert torch.equal(fit(), fit())
