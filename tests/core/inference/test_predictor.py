"""Model artifact (JSON + safetensors) and Predictor, on a model trained on a mini slice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from elmo_core.data import load_dataset
from elmo_core.inference import ModelLoadError, Predictor, load_model
from elmo_core.model.scoring import prior_word_rows
from elmo_core.training import TrainConfig, train

MINI = Path(__file__).resolve().parents[3] / "examples" / "debian-deps-mini"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    dataset = load_dataset(MINI, empty_rows="keep")
    config = TrainConfig.model_validate(
        {
            "epochs": 1,
            "batch_size": 50,
            "data": {"max_train_points": 200, "max_test_points": 50},
            "encoder": {"dim": 32, "tfidf": {"max_features": 4000}},
            "head": {"head_ratio": 0.05},
            "device": "cpu",
        }
    )
    out = tmp_path_factory.mktemp("run")
    result = train(config, dataset, out)
    return dataset, result


def test_artifact_holds_only_json_and_safetensors(trained):
    _, result = trained
    names = sorted(p.name for p in result.model_dir.iterdir())
    assert names == [
        "config.json",
        "fusion.json",
        "fusion.safetensors",
        "label_texts.json",
        "metrics.json",
        "model.safetensors",
        "telemetry.json",
        "tfidf.json",
    ]
    meta = json.loads((result.model_dir / "config.json").read_text())
    assert meta["head"]["precision"] == "fp8" and meta["num_labels"] == 8779


def test_loaded_model_scores_like_the_trained_one(trained):
    dataset, result = trained
    model = load_model(result.model_dir)
    assert model.head.weight.dtype == torch.float8_e4m3fn
    assert model.label_texts == dataset.label_texts
    predictor = Predictor(model, torch.device("cpu"))
    texts = dataset.test.texts[:5]
    first = predictor.predict(texts, k=5)
    again = Predictor.load(result.model_dir).predict(texts, k=5)
    assert first == again
    for row in first:
        scores = [item["score"] for item in row]
        assert len(row) == 5 and scores == sorted(scores, reverse=True)
        assert all(0.0 < s < 1.0 for s in scores)
        assert all(item["label"] == dataset.label_texts[item["label_id"]] for item in row)


def _head_probabilities(predictor: Predictor, text: str) -> torch.Tensor:
    """sigmoid(W e) of every label for one text, in fp64 from the dequantized head."""
    encoder, head = predictor.model.encoder, predictor.model.head
    prepared = encoder.featurize([text], None)
    with torch.no_grad():
        emb = encoder(encoder.make_batch(prepared, np.array([0]), torch.device("cpu"))).double()
        return torch.sigmoid(emb @ head.dequantized().double().T)[0]


def test_scores_are_sigmoid_of_the_head_logits_without_fusion(trained):
    dataset, result = trained
    model = load_model(result.model_dir)
    model.fusion = None
    predictor = Predictor(model, torch.device("cpu"))
    text = dataset.test.texts[0]
    row = predictor.predict([text], k=3)[0]
    probs = _head_probabilities(predictor, text)
    expected = probs[[item["label_id"] for item in row]].tolist()
    assert [item["score"] for item in row] == pytest.approx(expected, rel=1e-3)
    assert row[0]["label_id"] == int(probs.argmax())


def test_fused_scores_follow_the_formula(trained):
    """score = (p_head + a * vote + b * cosine + c * svm) / (1 + a + b + c), p_head 0 outside
    the head's candidates; checked against the head in fp64 and the three priors."""
    dataset, result = trained
    predictor = Predictor.load(result.model_dir)
    fusion = predictor.model.fusion
    assert fusion is not None and fusion.label_text_weight > 0 and fusion.neighbour_weight > 0
    encoder = predictor.model.encoder
    prepared = encoder.featurize([dataset.test.texts[1]], None)
    # the encoder's TF-IDF rows feed the neighbour prior: one TF-IDF pass per prediction
    assert prior_word_rows(encoder, fusion, prepared) is prepared
    text = dataset.test.texts[1]
    row = predictor.predict([text], k=5)[0]
    probs = _head_probabilities(predictor, text).numpy()
    in_head = np.zeros_like(probs, dtype=bool)
    in_head[np.argsort(-probs, kind="stable")[: fusion.candidates]] = True
    cosine = fusion.label_text.scores([text]).toarray()[0]
    vote = fusion.neighbours.scores([text]).toarray()[0]
    svm = np.zeros_like(cosine)  # no linear prior: this run's weights are not fitted
    if fusion.linear is not None:
        svm = fusion.linear.scores([text], top=fusion.candidates).toarray()[0]
    expected = (
        np.where(in_head, probs, 0.0)
        + fusion.neighbour_weight * vote
        + fusion.label_text_weight * cosine
        + fusion.linear_weight * svm
    ) / fusion.scale
    ids = [item["label_id"] for item in row]
    assert [item["score"] for item in row] == pytest.approx(expected[ids].tolist(), abs=1e-4)
    assert expected[ids[0]] == pytest.approx(expected.max(), abs=1e-4)


def test_threshold_k_and_bad_inputs(trained):
    _, result = trained
    predictor = Predictor.load(result.model_dir)
    row = predictor.predict(["python3 library"], k=10)[0]
    cut = row[3]["score"]
    kept = predictor.predict(["python3 library"], k=10, threshold=cut)[0]
    assert [i["label_id"] for i in kept] == [i["label_id"] for i in row[:4]]
    assert predictor.predict([], k=3) == []
    with pytest.raises(ValueError, match="k must be"):
        predictor.predict(["x"], k=0)
    with pytest.raises(ValueError, match="threshold"):
        predictor.predict(["x"], threshold=2.0)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not a model directory"):
        Predictor.load(tmp_path)


def test_exclude_drops_the_given_labels_and_keeps_k(trained):
    dataset, result = trained
    predictor = Predictor.load(result.model_dir)
    texts = dataset.test.texts[:2]
    full = predictor.predict(texts, k=8)
    drop = [[full[0][0]["label_id"], full[0][2]["label_id"]], []]
    got = predictor.predict(texts, k=5, exclude=drop)
    assert [i["label_id"] for i in got[0]] == [
        i["label_id"] for i in full[0] if i["label_id"] not in drop[0]
    ][:5]
    assert got[1] == full[1][:5]
    with pytest.raises(ValueError, match="one per text"):
        predictor.predict(texts, k=3, exclude=[[1]])
    with pytest.raises(ValueError, match="out of range"):
        predictor.predict(texts, k=3, exclude=[[predictor.num_labels], []])
    with pytest.raises(ValueError, match="not an integer"):
        predictor.predict(texts, k=3, exclude=[["7"], []])


def test_shared_tfidf_is_stored_once_and_format_1_models_still_load(trained, tmp_path):
    dataset, result = trained
    fusion_meta = json.loads((result.model_dir / "fusion.json").read_text())
    assert fusion_meta["neighbours"]["tfidf"] == "encoder"
    model = load_model(result.model_dir)
    assert model.fusion.neighbours.featurizer is model.encoder.featurizer
    texts = dataset.test.texts[:5]
    expected = Predictor(model, torch.device("cpu")).predict(texts, k=5)
    # A format-1 model directory (written before the sharing) holds its own copy of the TF-IDF.
    old = tmp_path / "format-1"
    shutil.copytree(result.model_dir, old)
    fusion_meta["neighbours"]["tfidf"] = json.loads((old / "tfidf.json").read_text())
    (old / "fusion.json").write_text(json.dumps(fusion_meta))
    meta = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**meta, "format_version": 1}))
    loaded = load_model(old)
    assert loaded.fusion.neighbours.featurizer is not loaded.encoder.featurizer
    assert Predictor(loaded, torch.device("cpu")).predict(texts, k=5) == expected
    (old / "config.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ModelLoadError, match=r"model format 99, this version reads \[1, 2\]"):
        load_model(old)
