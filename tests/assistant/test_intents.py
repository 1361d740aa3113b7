"""Intent examples and the embedding + logistic-regression classifier."""

from __future__ import annotations

import pytest

from coldbrew.assistant import INTENTS, IntentClassifier, IntentExample, load_examples
from coldbrew.errors import DataError, NotFittedError
from coldbrew.text import HashingEncoder


def test_bundled_examples_cover_every_intent_in_both_languages():
    examples = load_examples()
    assert len(examples) >= 300
    for intent in INTENTS:
        langs = {e.lang for e in examples if e.intent == intent}
        assert langs == {"en", "zh"}, intent


def test_bundled_examples_do_not_overlap_the_evaluation_set():
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "assistant_eval.jsonl"
    held_out = {json.loads(line)["text"].lower() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    assert len(held_out) >= 300
    assert not held_out & {e.text.lower() for e in load_examples()}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "hi", "intent": "greeting"}\n{"text": "x", "intent": "dance"}\n', "line 2: field 'intent'"),
        ('{"text": "", "intent": "greeting"}\n', "line 1: field 'text'"),
        ("{not json\n", "line 1: malformed JSON"),
        ("\n", "no examples"),
    ],
)
def test_bad_examples_name_line_and_field(tmp_path, content, message):
    path = tmp_path / "examples.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_examples(path)


def test_missing_examples_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_examples(tmp_path / "nope.jsonl")


def test_classifier_learns_and_predicts_probabilities():
    clf = IntentClassifier(HashingEncoder()).fit(load_examples())
    labels, confidence = clf.predict(["show me candles", "比较第一个和第二个", "start over", "只要红色的"])
    assert labels == ["find_products", "compare", "reset", "filter"]
    assert confidence.dtype.name == "float32" and ((confidence > 0) & (confidence <= 1)).all()
    proba = clf.predict_proba(["hello"])
    assert proba.shape == (1, len(clf.classes_)) and abs(float(proba.sum()) - 1) < 1e-4


def test_classifier_errors():
    with pytest.raises(NotFittedError):
        IntentClassifier(HashingEncoder()).predict(["hi"])
    with pytest.raises(DataError, match="two different intents"):
        IntentClassifier(HashingEncoder()).fit([IntentExample("hi", "greeting")])


@pytest.mark.slow
def test_multilingual_encoder_recognises_unseen_wording():
    """The default (USE) classifier on sentences absent from its training examples."""
    from coldbrew.assistant import bundled_classifier

    clf = bundled_classifier()  # USE; shared with the other tests of this process
    assert clf.encoder.name.startswith("use-multilingual-v3")
    cases = {
        "could you find me a nice scented candle": "find_products",
        "我想找一个保温杯": "find_products",
        "what would suit me, based on what I've bought before?": "recommend",
        "这两件哪个更好": "compare",
        "清空所有的条件，从头开始": "reset",
        "only the ones below thirty pounds": "filter",
    }
    labels, _ = clf.predict(list(cases))
    assert sum(a == b for a, b in zip(labels, cases.values())) >= 5, list(zip(cases, labels))


def test_bundled_classifier_is_trained_once_per_encoder():
    from coldbrew.assistant import bundled_classifier

    first = bundled_classifier(HashingEncoder())
    assert bundled_classifier(HashingEncoder()) is first
    assert bundled_classifier(HashingEncoder(dim=256)) is not first
