"""Model soups on a real tiny timm model: greedy never below its best ingredient, uniform is the mean."""

from __future__ import annotations

import copy

import pytest
import torch

from tl_bench.evaluation import SoupError, average_state_dicts, check_ingredients, greedy_soup
from tl_bench.models import TransferModel, build_model


def tiny(num_classes: int = 3) -> TransferModel:
    return build_model("test_resnet", num_classes=num_classes, img_size=32).eval()


@pytest.fixture(scope="module")
def task() -> tuple[TransferModel, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Random images labelled by a reference network (its head bias centred so all three classes
    occur): the reference scores 1.0, and copies of it with noise on their weights score less."""
    torch.manual_seed(0)
    reference = tiny()
    images = torch.randn(256, 3, 32, 32)
    with torch.no_grad():
        reference.head.fc.bias -= reference(images).mean(dim=0)
        labels = reference(images).argmax(dim=1)
    assert labels.bincount(minlength=3).min() > 30
    return tiny(), images, labels, copy.deepcopy(reference.state_dict())


def accuracy_of(net: TransferModel, images: torch.Tensor, labels: torch.Tensor):
    def score(state_dict: dict[str, torch.Tensor]) -> float:
        net.load_state_dict(state_dict)
        with torch.no_grad():
            return (net(images).argmax(dim=1) == labels).float().mean().item()
    return score


def perturbed(state_dict: dict[str, torch.Tensor], scales: list[float], seed: int) -> list[dict[str, torch.Tensor]]:
    """Copies of ``state_dict`` with Gaussian noise of ``scale`` times each weight tensor's spread
    (BatchNorm statistics and counters left as they are)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for scale in scales:
        out.append({k: v + scale * v.std() * torch.randn(v.shape, generator=g)
                    if v.is_floating_point() and v.numel() > 1 and "running" not in k else v.clone()
                    for k, v in state_dict.items()})
    return out


def test_greedy_soup_is_never_worse_than_its_best_ingredient(task) -> None:
    net, images, labels, reference = task
    score = accuracy_of(net, images, labels)
    candidates = perturbed(reference, [0.05, 0.065, 0.08, 0.095, 0.11, 1.0], seed=1)  # the last one is ruined
    before = {k: v.clone() for k, v in candidates[0].items()}
    soup = greedy_soup(candidates, score)
    best = max(soup.candidate_scores)
    assert soup.score >= best
    assert soup.ingredients[0] == soup.candidate_scores.index(best)  # started from the best
    assert 1 < len(soup.ingredients) < len(candidates) and 5 not in soup.ingredients
    assert score(soup.state_dict) == soup.score
    expected = average_state_dicts([candidates[i] for i in soup.ingredients])
    assert all(torch.equal(soup.state_dict[k], expected[k]) for k in expected)
    assert all(torch.equal(before[k], candidates[0][k]) for k in before)  # ingredients left untouched


def test_greedy_soup_does_not_depend_on_the_order_given(task) -> None:
    net, images, labels, reference = task
    score = accuracy_of(net, images, labels)
    candidates = perturbed(reference, [0.05, 0.07, 0.09], seed=2)
    forward, backward = greedy_soup(candidates, score), greedy_soup(candidates[::-1], score)
    assert forward.score == backward.score
    assert sorted(forward.ingredients) == sorted(2 - i for i in backward.ingredients)


def test_uniform_soup_is_the_mean_of_the_state_dicts(task) -> None:
    net, images, labels, reference = task
    candidates = perturbed(reference, [0.1, 0.2, 0.3], seed=3)
    counter = "backbone.model.bn1.num_batches_tracked"
    for i, sd in enumerate(candidates):
        sd[counter] = torch.tensor(10 * (i + 1))
    soup = average_state_dicts(candidates)
    for key, value in soup.items():
        if value.is_floating_point():
            assert torch.allclose(value, torch.stack([sd[key] for sd in candidates]).mean(dim=0), atol=1e-6), key
            assert value.dtype == candidates[0][key].dtype
    assert soup[counter].item() == 10 and soup[counter].dtype == torch.int64  # integer buffers from the first
    uniform = greedy_soup(candidates, accuracy_of(net, images, labels), uniform=True)
    assert uniform.ingredients == (0, 1, 2)
    assert all(torch.equal(uniform.state_dict[k], soup[k]) for k in soup)


def test_ingredients_of_another_architecture_name_the_key_that_differs(task) -> None:
    _, _, _, reference = task
    wider = tiny(num_classes=4).state_dict()
    with pytest.raises(SoupError, match=r"key 'head.fc.weight' is float \(3, \d+\) in ingredient 0 but "
                                        r"float \(4, \d+\) in ingredient 1"):
        check_ingredients([reference, wider])
    fewer = {k: v for k, v in reference.items() if k != "head.fc.bias"}
    with pytest.raises(SoupError, match="ingredient 2 lacks key 'head.fc.bias'"):
        average_state_dicts([reference, reference, fewer])
    with pytest.raises(SoupError, match="ingredient 1 has the extra key 'extra'"):
        check_ingredients([reference, {**reference, "extra": torch.zeros(1)}])
    with pytest.raises(SoupError, match="at least one ingredient"):
        greedy_soup([], lambda sd: 0.0)
