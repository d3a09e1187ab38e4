"""The report's numbers against hand computation on a few constructed images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tl_bench.evaluation import build_report, expected_calibration_error, topk_accuracy
from tl_bench.evaluation.metrics import probabilities, reliability_bins, worst_confusions

# Six images, three classes: (label, predicted class, confidence of the prediction).
CASES = [(0, 0, 0.9), (0, 0, 0.9), (0, 1, 0.5), (1, 1, 0.58), (1, 2, 0.5), (2, 2, 0.95)]


def constructed() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose softmax gives each image its confidence on the predicted class, the rest shared."""
    probs = torch.zeros(len(CASES), 3, dtype=torch.float64)
    for i, (_, pred, conf) in enumerate(CASES):
        probs[i] = (1 - conf) / 2
        probs[i, pred] = conf
    return probs.log(), torch.tensor([label for label, _, _ in CASES])


def test_confusion_counts_and_per_class_scores_match_hand_computation() -> None:
    logits, labels = constructed()
    report = build_report(logits, labels, class_names=["cat", "dog", "fox"])
    # true 0 -> predicted 0, 0, 1; true 1 -> 1, 2; true 2 -> 2
    assert report.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    table = report.per_class.set_index("name")
    assert table["precision"].tolist() == pytest.approx([2 / 2, 1 / 2, 1 / 2])
    assert table["recall"].tolist() == pytest.approx([2 / 3, 1 / 2, 1 / 1])
    assert table["f1"].tolist() == pytest.approx([0.8, 0.5, 2 / 3])
    assert table["support"].tolist() == [3, 2, 1]
    assert table["predicted"].tolist() == [2, 2, 2]
    s = report.summary
    assert s["top1"] == pytest.approx(4 / 6)
    assert s["top5"] is None  # three classes: every label is in the top five
    assert s["macro_precision"] == pytest.approx(2 / 3)
    assert s["weighted_precision"] == pytest.approx((1.0 * 3 + 0.5 * 2 + 0.5 * 1) / 6)
    assert s["weighted_recall"] == pytest.approx(s["top1"])  # recall weighted by support is accuracy


def test_ece_over_fifteen_bins_matches_hand_computation() -> None:
    logits, labels = constructed()
    # bins (13/15, 14/15]: two right at 0.9; (14/15, 1]: one right at 0.95;
    # (7/15, 8/15]: two wrong at 0.5; (8/15, 9/15]: one right at 0.58
    by_hand = (2 * abs(1 - 0.9) + 1 * abs(1 - 0.95) + 2 * abs(0 - 0.5) + 1 * abs(1 - 0.58)) / 6
    probs = probabilities(logits.numpy())
    assert expected_calibration_error(probs, labels.numpy()) == pytest.approx(by_hand)
    assert build_report(logits, labels).summary["ece"] == pytest.approx(by_hand)
    bins = reliability_bins(probs, labels.numpy())
    assert len(bins) == 15 and bins["count"].sum() == 6
    assert bins.loc[[7, 8, 13, 14], "count"].tolist() == [2, 1, 2, 1]
    assert bins.loc[7, "accuracy"] == 0.0 and bins.loc[13, "confidence"] == pytest.approx(0.9)


def test_a_confidence_on_a_bin_edge_falls_in_the_lower_bin() -> None:
    # two bins, (0, 0.5] and (0.5, 1]: a confidence of 0.5 is the first's, 1.0 the second's
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    bins = reliability_bins(probs, np.array([0, 0]), n_bins=2)
    assert bins["count"].tolist() == [1, 1]


def test_top5_counts_labels_among_the_five_highest_logits() -> None:
    row = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    logits = row.repeat(3, 1)
    labels = np.array([0, 4, 5])  # ranked first, fifth and sixth
    assert topk_accuracy(logits.numpy(), labels, 5) == pytest.approx(2 / 3)
    assert topk_accuracy(logits.numpy(), labels, 1) == pytest.approx(1 / 3)
    assert build_report(logits, torch.from_numpy(labels)).summary["top5"] == pytest.approx(2 / 3)
    assert topk_accuracy(logits[:, :5].numpy(), np.array([0, 4, 3]), 5) is None


def test_worst_pairs_are_the_largest_off_diagonal_cells() -> None:
    confusion = np.array([[5, 3, 0], [1, 6, 3], [0, 4, 2]])
    pairs = worst_confusions(confusion, ["a", "b", "c"], n=3)
    # three cells of 3 and 4: c->b (4 of 6), then a->b (3 of 8) and b->c (3 of 10): ties by rate
    assert list(zip(pairs["true_name"], pairs["predicted_name"])) == [("c", "b"), ("a", "b"), ("b", "c")]
    assert pairs["count"].tolist() == [4, 3, 3]
    assert pairs["rate"].tolist() == pytest.approx([4 / 6, 3 / 8, 3 / 10])
    assert worst_confusions(np.diag([3, 4]), ["a", "b"]).empty


def test_labels_outside_the_classes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        build_report(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        build_report(torch.zeros(2, 3), torch.tensor([0, 1]), class_names=["a", "b"])
