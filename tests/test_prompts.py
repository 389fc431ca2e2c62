"""Short text -> class ids: synonyms, plurals, digits and number words, several classes, clear errors, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from cvaelib import PromptError, class_names
from cvaelib.cli import main
from cvaelib.prompts import (FASHION_SYNONYMS, describe_prompt, edit_distance, known_words, parse_prompt,
                             samples_for_prompt, suggest)
from tiny_models import REPO, tiny_checkpoint, tiny_model

FASHION = class_names("fashion-mnist")


@pytest.mark.parametrize("text, ids", [
    ("a pair of running shoes", [7]), ("Sneakers!", [7]), ("trainers", [7]),
    ("coat", [4]), ("a warm JACKET", [4]), ("blazer", [4]),
    ("handbag", [8]), ("a leather bag.", [8]), ("backpack", [8]),
    ("trousers", [1]), ("pants", [1]), ("blue jeans", [1]),
    ("T-shirt", [0]), ("tshirts", [0]), ("a tee", [0]), ("tank top", [0]),
    ("shirt", [6]), ("a dress shirt", [6]), ("button-down", [6]),
    ("dresses", [3]), ("an evening gown", [3]),
    ("sweater", [2]), ("hoodie", [2]), ("Pullovers", [2]),
    ("sandals", [5]), ("flip-flops", [5]),
    ("ankle boots", [9]), ("boot", [9]), ("Ankle-Boot", [9]),
])
def test_fashion_synonyms_plurals_case_punctuation(text, ids):
    assert parse_prompt(text, "fashion-mnist") == ids


def test_every_fashion_class_has_synonyms_and_its_own_name():
    words = known_words("fashion-mnist")
    for k, name in enumerate(FASHION):
        for part in name.split("/"):
            assert words[" ".join(part.lower().replace("-", " ").split())] == k
        assert len(FASHION_SYNONYMS[k]) >= 3, name
        assert all(parse_prompt(w, "fashion-mnist") == [k] for w in FASHION_SYNONYMS[k]), name


def test_longest_phrase_wins_over_words_inside_it():
    # The article's first-match loop maps "T-shirt" to Shirt and "dress shirt" to Dress; one alternation,
    # longest first, does not.
    assert parse_prompt("a T-shirt", "fashion-mnist") == [0]
    assert parse_prompt("dress shirt", "fashion-mnist") == [6]
    with pytest.raises(PromptError):
        parse_prompt("a laptop", "fashion-mnist")  # no word boundary, no class


@pytest.mark.parametrize("text, ids", [
    ("7", [7]), ("seven", [7]), ("the digit 7", [7]), ("Seven!", [7]), ("sevens", [7]), ("7s", [7]),
    ("a handwritten 0", [0]), ("zero", [0]), ("nought", [0]), ("number nine", [9]), ("#3", [3]),
])
def test_digits_and_number_words(text, ids):
    assert parse_prompt(text, "mnist") == ids
    assert parse_prompt(text, "digits") == ids


def test_several_classes_in_order_each_once():
    assert parse_prompt("seven and 3, then seven again", "mnist") == [7, 3]
    assert parse_prompt("jackets, jeans and ankle boots", "fashion-mnist") == [4, 1, 9]
    assert parse_prompt("a bag next to a coat", "fashion-mnist") == [8, 4]
    # number words inside other words are not digits
    assert parse_prompt("seventeen and a 2", "mnist") == [2]


def test_bare_number_is_a_class_id_for_any_dataset():
    assert parse_prompt("7", "fashion-mnist") == [7]
    assert parse_prompt("3 dresses", "fashion-mnist") == [3]  # a count, not class 3 twice
    with pytest.raises(PromptError, match="out of range"):
        parse_prompt("12", "fashion-mnist")


def test_unknown_text_lists_classes_and_suggests_the_nearest():
    with pytest.raises(PromptError) as err:
        parse_prompt("a pair of sneekers", "fashion-mnist")
    msg = str(err.value)
    assert "'sneaker'" in msg and "class 7" in msg
    assert all(name in msg for name in FASHION) and "\n" not in msg
    with pytest.raises(PromptError, match="'seven'"):
        parse_prompt("sevn", "mnist")
    with pytest.raises(PromptError, match="empty prompt"):
        parse_prompt("  ", "mnist")
    assert suggest("jackit", "fashion-mnist") == ("jacket", 4)
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3


def test_class_names_list_instead_of_dataset_name():
    assert parse_prompt("sneakers", FASHION) == [7]
    assert parse_prompt("seven", [str(i) for i in range(10)]) == [7]  # plain "0".."9" names get digit words
    assert parse_prompt("cat", ["cat", "dog"]) == [0]
    assert describe_prompt("dogs", ["cat", "dog"]) == {"prompt": "dogs", "classes": [1], "names": ["dog"]}


def test_cli_parse_prompt_json(capsys):
    assert main(["parse-prompt", "--dataset", "fashion-mnist", "a pair of running shoes", "Coats & bags"]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert lines == [{"prompt": "a pair of running shoes", "classes": [7], "names": ["Sneaker"]},
                     {"prompt": "Coats & bags", "classes": [4, 8], "names": ["Coat", "Bag"]}]
    assert main(["parse-prompt", "--dataset", "mnist", "the digit 7"]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == [7]


def test_cli_parse_prompt_unknown_text_exits_nonzero():
    proc = subprocess.run([sys.executable, "-m", "cvaelib", "parse-prompt", "--dataset", "fashion-mnist", "a car"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no class found in 'a car'") and "known classes" in proc.stderr
    assert proc.stderr.count("\n") == 1
    bad = subprocess.run([sys.executable, "-m", "cvaelib", "parse-prompt", "--dataset", "cifar", "cat"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and "unknown dataset" in bad.stderr


def test_samples_for_prompt_on_a_trained_fashion_cvae(data_root):
    model = tiny_model("cvae", "fashion-mnist", data_root)
    images, ids = samples_for_prompt(model, "sneakers and a bag", n=4, seed=1)
    assert ids == [7, 8] and images.shape == (8, 1, 28, 28)
    assert 0 <= float(images.min()) and float(images.max()) <= 1
    # same seed -> same z for both classes, so the rows differ only by the class; and both are repeatable
    again, _ = samples_for_prompt(model, "sneakers and a bag", n=4, seed=1)
    assert torch.equal(images, again)
    # a bag is a bulky bright blob, a sneaker a flat low shape: the class reaches the pixels
    sneaker, bag = images[:4].mean(), images[4:].mean()
    assert float(bag) > float(sneaker)
    with pytest.raises(PromptError):
        samples_for_prompt(model, "a blue car", n=2)


def test_cli_generate_with_prompt(data_root, tmp_path, capsys):
    ckpt = tiny_checkpoint("cvae", "fashion-mnist", data_root)
    out, npy = tmp_path / "g.png", tmp_path / "g.npy"
    assert main(["generate", "--checkpoint", str(ckpt), "--prompt", "two jackets and jeans", "--n", "3",
                 "--out", str(out), "--npy", str(npy)]) == 0
    import numpy as np

    arr = np.load(npy)
    assert arr.shape == (6, 1, 28, 28) and out.stat().st_size > 1000
    assert "Coat, Trouser" in capsys.readouterr().out
    assert main(["generate", "--checkpoint", str(ckpt), "--prompt", "a car", "--out", str(out)]) == 2
    assert "known classes" in capsys.readouterr().err
