"""Section 7's wording follows its verdicts: the chapter is executed against result sets with opposite verdicts.

The results start from one real smoke result (tests/data/cnn_smoke.json, written by tests/make_cnn_fixture.py)
and are altered by hand: a run's accuracies (with a confusion matrix to match), the data and the backbone. Each
test reads the Markdown a reader would see and checks which of the chapter's alternatives it chose, without
pinning whole sentences.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from chapter_text import chapter_text
from make_cnn_fixture import load_fixture

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "report" / "section7.qmd"
SMOKE = {"seed": 0, "cnn_learning_rates": [0.01, 0.0001], "cnn_image_size": 32, "cnn_train_subset": 96}


@pytest.fixture(scope="module")
def smoke():
    return load_fixture()


def text_of(result, tensors) -> str:
    return chapter_text(CHAPTER, {"cnn": result}, params=SMOKE, tensors={"cnn": tensors})


def run_of(result, label):
    return next(run for run in result["runs"] if run["label"] == label)


def set_accuracy(result, label, test_acc, val_acc=None):
    """Give run `label` these accuracies, with test and validation confusion matrices that match them."""
    run = run_of(result, label)
    for split, acc in (("test", test_acc), ("val", test_acc if val_acc is None else val_acc)):
        counts = result["data"]["counts"][split]
        real, fake = counts["real"], counts["fake"]
        right = round(acc * (real + fake))
        real_right = min(real, right // 2)
        fake_right = min(fake, right - real_right)
        run["confusion"][split] = [[real_right, real - real_right], [fake - fake_right, fake_right]]
        run["final"][f"{split}_acc"] = (real_right + fake_right) / (real + fake)
    return run


def paragraph(text, start):
    """The paragraph of `text` that contains `start`."""
    found = [block for block in re.split(r"\n\s*\n", text) if start in block]
    assert found, f"no paragraph contains {start!r}"
    return found[0]


def test_the_smoke_result_reads_as_its_numbers_say(smoke):
    result, tensors = smoke
    text = text_of(result, tensors)
    assert "stand-in, not faces" in text and "callout-warning" in text  # the bundled data are not faces
    assert "surrogate source task" in text
    assert "Fine-tuning beats chance at no rate here" in text  # no fine-tuning run beats chance in the smoke run


def test_the_winner_sentence_follows_who_wins_and_by_how_much(smoke):
    result, tensors = smoke
    tuned = copy.deepcopy(result)
    set_accuracy(tuned, "finetune lr=1e-4", 0.95)
    tuned_text = paragraph(text_of(tuned, tensors), "The best run overall is")
    assert "The best run overall is the fine-tuned ResNet18 at lr = 1e-4" in tuned_text
    assert "the lead is real" in tuned_text and "cannot be told apart" not in tuned_text

    pixels = copy.deepcopy(result)
    set_accuracy(pixels, "xgboost", 0.95)
    pixels_text = paragraph(text_of(pixels, tensors), "The best run overall is")
    assert "The best run overall is XGBoost on pixels" in pixels_text and "the lead is real" in pixels_text

    close = copy.deepcopy(result)
    set_accuracy(close, "finetune lr=1e-4", 0.80)
    set_accuracy(close, "xgboost", 0.79)
    close_text = paragraph(text_of(close, tensors), "The best run overall is")
    assert "the fine-tuned ResNet18" in close_text and "cannot be told apart" in close_text


def test_fine_tuning_broken_by_large_rates_or_learning_at_all_rates(smoke):
    result, tensors = smoke
    breaks = copy.deepcopy(result)
    set_accuracy(breaks, "finetune lr=1e-4", 0.9)
    set_accuracy(breaks, "finetune lr=0.01", 0.5)
    set_accuracy(breaks, "linear_probe lr=0.01", 0.8)
    text = text_of(breaks, tensors)
    assert "Large rates break fine-tuning: at lr = 0.01" in text
    assert "so it is the backbone that the large steps damage" in text  # the probe learns at that rate

    survives = copy.deepcopy(result)
    set_accuracy(survives, "finetune lr=1e-4", 0.9)
    set_accuracy(survives, "finetune lr=0.01", 0.8)
    text = text_of(survives, tensors)
    assert "did not break it" in text and "Large rates break fine-tuning" not in text
    assert "beats chance at no rate" not in text


def test_the_probe_comparison_follows_which_fit_is_better(smoke):
    result, tensors = smoke
    linear = copy.deepcopy(result)
    set_accuracy(linear, "linear_probe lr=0.01", 0.9)
    set_accuracy(linear, "sklearn_probe", 0.6)
    text = paragraph(text_of(linear, tensors), "The best linear probe")
    assert "hand-tuned rate beats the defaults" in text and "they agree" not in text

    sklearn = copy.deepcopy(result)
    set_accuracy(sklearn, "linear_probe lr=0.01", 0.6)
    set_accuracy(sklearn, "linear_probe lr=1e-4", 0.55)
    set_accuracy(sklearn, "sklearn_probe", 0.9)
    text = paragraph(text_of(sklearn, tensors), "The best linear probe")
    assert "The scikit-learn fit" in text and "None of the probe's learning rates comes that close" in text

    agree = copy.deepcopy(result)
    set_accuracy(agree, "linear_probe lr=0.01", 0.8)
    set_accuracy(agree, "sklearn_probe", 0.8)
    assert "they agree" in paragraph(text_of(agree, tensors), "The best linear probe")


def test_user_data_with_imagenet_weights_have_no_stand_in_warning(smoke):
    result, tensors = smoke
    real = copy.deepcopy(result)
    real["data"]["is_standin"] = False
    real.update(backbone="imagenet",
                backbone_info={"file": "/hub/resnet18-f37072fd.pth"})
    text = text_of(real, tensors)
    assert "callout-warning" not in text and "stand-in" not in text and "surrogate" not in text
    assert "torchvision's ImageNet weights for ResNet18 (read from /hub/resnet18-f37072fd.pth)" in text
    assert "data: user's real/fake images" in text  # the provenance note under the tables


def test_a_subset_of_baselines_is_named_and_missing_comparisons_say_so(smoke):
    result, tensors = smoke
    pixels = copy.deepcopy(result)
    pixels["runs"] = [run for run in pixels["runs"] if run["baseline"] in ("xgboost", "scratch")]
    text = text_of(pixels, tensors)
    assert "This run has only XGBoost on pixels and ResNet18 from scratch" in text
    assert "No baseline of this run uses a pretrained backbone." in text
    assert "This comparison needs both probes, and this run has neither" in text
    assert "This comparison needs a baseline on the pretrained backbone" in text


def test_the_chance_paragraph_follows_scratch_and_constant_answers(smoke):
    result, tensors = smoke
    text = text_of(result, tensors)
    assert "from scratch does not beat chance" in text and "That is no surprise after" in text
    assert "give the same answer for every test image" in text  # two smoke runs answer “fake” throughout

    learned = copy.deepcopy(result)
    for run in learned["runs"]:
        set_accuracy(learned, run["label"], 0.8 if run["baseline"] == "scratch" else 0.7)
    text = text_of(learned, tensors)
    assert "from scratch does beat chance" in text and "That is no surprise" not in text
    assert "same answer for every test image" not in text
    assert "Every one of the 8 runs beats chance on the test set." in text


def test_the_best_and_worst_run_passage_follows_their_confusion(smoke):
    result, tensors = smoke
    lopsided = copy.deepcopy(result)
    best = set_accuracy(lopsided, "xgboost", 0.7)
    real = lopsided["data"]["counts"]["test"]["real"]
    fake = lopsided["data"]["counts"]["test"]["fake"]
    best["confusion"]["test"] = [[real, 0], [fake - round(0.4 * fake), round(0.4 * fake)]]
    best["final"]["test_acc"] = (real + round(0.4 * fake)) / (real + fake)
    text = paragraph(text_of(lopsided, tensors), "The best run, `xgboost`")
    assert "Even the best run is lopsided: it finds the real images" in text

    balanced = copy.deepcopy(result)
    set_accuracy(balanced, "xgboost", 0.7)
    assert "lopsided" not in paragraph(text_of(balanced, tensors), "The best run, `xgboost`")
