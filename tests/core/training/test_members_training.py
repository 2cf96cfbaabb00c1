"""A run of two members: trained side by side, saved and served as one model that scores as
the run reported."""

from __future__ import annotations

import json

import numpy as np
import torch

from elmo_core.data.splits import select_splits
from elmo_core.encoders import SparseEncoder
from elmo_core.model import load_model
from elmo_core.model.evaluation import evaluate_split, split_propensities
from elmo_core.training import TrainerCallbacks, train


class Logs(TrainerCallbacks):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_log(self, message: str) -> None:
        self.lines.append(message)


def test_two_members_are_saved_as_one_model_that_scores_as_reported(
    mini_dataset, tmp_path, small_config
):
    config = small_config(members=2, epochs=3, eval={"patience": 0})
    logs = Logs()
    result = train(config, mini_dataset, tmp_path, logs)
    assert "2 members, saved merged into one model" in logs.lines
    assert "encoder tfidf: 66 dims" in logs.lines
    meta = json.loads((result.model_dir / "config.json").read_text())
    assert meta["dim"] == 66 and meta["train_config"]["members"] == 2
    assert meta["encoder"]["dim"] == 64 and meta["encoder"]["bias_columns"] == 2
    saved = load_model(result.model_dir)
    assert isinstance(saved.encoder, SparseEncoder) and saved.head.dim == 66
    assert saved.head.weight.dtype == torch.float8_e4m3fn
    splits = select_splits(saved.config, mini_dataset)
    served = evaluate_split(
        saved.encoder,
        saved.head,
        saved.fusion,
        splits.test,
        config=saved.config.eval,
        propensities=split_propensities(splits.train.labels, saved.config.eval),
        device=torch.device("cpu"),
    )
    assert served == result.metrics


def test_label_text_init_gives_each_member_its_own_embedding(mini_dataset, small_config):
    from elmo_core.config import EncoderConfig
    from elmo_core.encoders import MemberEncoders, build_encoder
    from elmo_core.head import MemberHeads, XMCHead
    from elmo_core.training.assembly import init_head_from_label_texts

    config = small_config(members=2, head={"init_from_label_texts": 0.5}, precision="fp32")
    texts = mini_dataset.label_texts[:40]
    encoder = MemberEncoders(
        EncoderConfig(dim=8), build_encoder(EncoderConfig(dim=8), texts, None), 2, [0, 1]
    )
    columns = [encoder.member_columns(m) for m in (0, 1)]
    heads = [XMCHead(40, 9, precision="fp32", init_std=0.0, device="cpu") for _ in columns]
    members = MemberHeads(heads, columns, encoder.dim)
    init_head_from_label_texts(config, members, encoder, texts, torch.device("cpu"), print)
    encoder.eval()
    embedded = encoder(
        encoder.make_batch(encoder.featurize(texts, None), np.arange(40), torch.device("cpu"))
    )
    for head, cols in zip(members.heads, columns, strict=True):
        expected = embedded[:, cols].float() * 0.5
        expected[:, -1] = 0.0  # each member's bias column starts at 0
        torch.testing.assert_close(head.dequantized(), expected, rtol=1e-6, atol=1e-7)


def test_members_on_lanes_train_the_model_of_members_one_after_another(
    mini_dataset, tmp_path, small_config
):
    """Two lanes of one thread each against the members stepped in turn on one thread: the same
    kernels on the same thread counts, so the same bits (dropout masks, rounding, optimiser)."""
    threads = torch.get_num_threads()
    runs = {}
    try:
        for lanes in (1, 2):
            logs = Logs()
            config = small_config(
                members=2, epochs=2, threads=lanes, member_lanes=lanes, eval={"patience": 0}
            )
            result = train(config, mini_dataset, tmp_path / f"lanes-{lanes}", logs)
            runs[lanes] = (load_model(result.model_dir), result, logs.lines)
    finally:
        torch.set_num_threads(threads)
    assert "2 members stepped on 2 lanes, 1 thread(s) each" in runs[2][2]
    assert not any("stepped on" in line for line in runs[1][2])
    (serial, serial_run, _), (laned, laned_run, _) = runs[1], runs[2]
    assert torch.equal(serial.head.weight.view(torch.uint8), laned.head.weight.view(torch.uint8))
    assert torch.equal(serial.encoder.embedding.weight, laned.encoder.embedding.weight)
    assert serial_run.history == laned_run.history and serial_run.metrics == laned_run.metrics
