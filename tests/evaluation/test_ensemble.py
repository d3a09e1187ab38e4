"""The ensemble's logits are the mean of its members', with every member in eval mode; logits collected by batch."""

from __future__ import annotations

import pytest
import torch

from tl_bench.evaluation import Ensemble, collect_logits
from tl_bench.models import build_model


def test_ensemble_output_is_the_mean_of_member_logits() -> None:
    torch.manual_seed(0)
    # different architectures: an ensemble, unlike a soup, needs only the same classes
    members = [build_model(name, num_classes=3, img_size=32, drop_path_rate=0.2)
               for name in ("test_resnet", "test_convnext", "test_vit")]
    ensemble = Ensemble(members)
    ensemble.train()  # must not switch members to training (BatchNorm updates, drop path)
    assert not ensemble.training and not any(m.training for m in ensemble.modules())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        out = ensemble(x)
        expected = torch.stack([m(x) for m in members]).mean(dim=0)
        again = ensemble(x)
    assert out.shape == (4, 3) and ensemble.num_classes == 3
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(out, again)  # eval mode: no randomness, no statistics updated
    assert not torch.allclose(out, members[0](x).detach(), atol=1e-4)  # not one member's logits


def test_members_must_agree_on_their_classes() -> None:
    three = build_model("test_resnet", num_classes=3, img_size=32)
    four = build_model("test_resnet", num_classes=4, img_size=32)
    with pytest.raises(ValueError, match=r"agree on num_classes, got \[3, 4\]"):
        Ensemble([three, four])
    plain = torch.nn.Linear(8, 5)
    assert Ensemble([plain], num_classes=5).num_classes == 5
    with pytest.raises(ValueError, match="pass num_classes="):
        Ensemble([plain])


def test_collected_logits_of_an_ensemble_are_its_output_batch_by_batch() -> None:
    torch.manual_seed(1)
    ensemble = Ensemble([build_model("test_resnet", num_classes=3, img_size=32) for _ in range(2)])
    x, y = torch.randn(10, 3, 32, 32), torch.randint(0, 3, (10,))
    logits, labels = collect_logits(ensemble, [(x[i:i + 4], y[i:i + 4]) for i in range(0, 10, 4)])
    with torch.no_grad():
        assert torch.allclose(logits, ensemble(x), atol=1e-5)
    assert torch.equal(labels, y) and logits.dtype == torch.float32
    with pytest.raises(ValueError, match="empty split"):
        collect_logits(ensemble, [])
