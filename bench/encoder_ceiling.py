"""The encoder-only training ceiling: pure-BF16 forward + backward + AdamW of a transformer encoder
on real token lengths, no data pipeline and no head: eager, through the trainer's CUDA graphs
(`graphs`, batches padded to 16 tokens as the trainer pads them then) and compiled.

The trainer's throughput is judged against this number measured in the same device call: the
same model, batch size, optimizer (torch-optimi AdamW with Kahan summation and foreach kernels, as
`Recipe` uses for BF16/FP8 runs on CUDA), and the same length-bucketed, padded batches
(`epoch_batches`, `TokenizedTexts.padded`).

    python3 bench/encoder_ceiling.py --data /tmp/amazon-670k --encoder minilm --batch 128 \\
        --steps 300 --modes eager,graphs --json out.json
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch
from optimi import AdamW
from rows import emit

from elmo_core.data.textio import read_lines
from elmo_core.encoders import TransformerEncoder, resolve_model_dir
from elmo_core.training.batches import BUCKET_WINDOW, epoch_batches
from elmo_core.training.graphed_encoder import (
    GRAPH_TOKEN_MULTIPLE,
    GraphedEncoderStep,
    padded_widths,
)


def make_optimizer(name: str, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer | None:
    """`optimi` (the trainer's: torch-optimi AdamW, Kahan summation, its default kernels),
    `optimi-foreach`, `torch-fused` (torch.optim.AdamW fused) or `none` (forward + backward)."""
    if name == "optimi":
        return AdamW(params, lr=1e-5, kahan_sum=True)
    if name == "optimi-foreach":
        return AdamW(params, lr=1e-5, kahan_sum=True, foreach=True, triton=False)
    if name == "torch-fused":
        return torch.optim.AdamW(params, lr=1e-5, fused=True)
    return None


def run(
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    encoder: torch.nn.Module,
    batches: list[dict[str, torch.Tensor]],
    steps: int,
    warmup: int,
    optimizer_name: str,
) -> float:
    """Points per second of `steps` training steps through `forward` (the encoder, its graphs
    or its compiled module) after `warmup` steps; the loss is the embedding's mean square, its
    gradient handed to the backward as the head's is in the trainer."""
    optimizer = make_optimizer(optimizer_name, list(encoder.parameters()))
    graphed = forward if isinstance(forward, GraphedEncoderStep) else None
    done = 0
    for step in range(warmup + steps):
        if step == warmup:
            torch.cuda.synchronize()
            started = time.perf_counter()
            done = 0
        batch = batches[step % len(batches)]
        out = forward(batch)
        grad = out.detach().float() * (2.0 / out.numel())
        if graphed is not None:
            graphed.backward(grad)
        else:
            out.backward(grad.to(out.dtype))
        if optimizer is not None:
            optimizer.step()
        if graphed is None:  # the graphs own the gradient tensors and overwrite them
            encoder.zero_grad(set_to_none=True)
        done += batch["input_ids"].shape[0]
    torch.cuda.synchronize()
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="A dataset dir with trn_X.txt.")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--modes", default="eager,compile")
    parser.add_argument("--optimizer", default="optimi-foreach", help="For every mode.")
    parser.add_argument("--optimizers", default="", help="More eager runs: optimi,none,...")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    texts = read_lines(args.data / "trn_X.txt")[: args.batch * BUCKET_WINDOW * 2]
    encoder = TransformerEncoder.from_directory(resolve_model_dir(args.encoder), args.max_length)
    tokens = encoder.featurize(texts, None)
    device = torch.device("cuda")
    encoder = encoder.to(device=device, dtype=torch.bfloat16).train()
    rows = epoch_batches(0, 0, len(texts), args.batch, tokens.lengths)
    full_rows = [r for r in rows if len(r) == args.batch]
    batches = [encoder.make_batch(tokens, r, device) for r in full_rows]
    tokens_per_batch = float(np.mean([b["input_ids"].shape[1] for b in batches]))
    runs = [(mode, args.optimizer) for mode in args.modes.split(",")]
    runs += [("eager", name) for name in args.optimizers.split(",") if name]
    for mode, optimizer_name in runs:
        compile_started = time.perf_counter()  # first pass: compilation or graph capture
        model: Callable[[dict[str, torch.Tensor]], torch.Tensor] = encoder
        if mode == "graphs":
            encoder.pad_to_multiple_of = GRAPH_TOKEN_MULTIPLE
            batches = [encoder.make_batch(tokens, r, device) for r in full_rows]
            tokens_per_batch = float(np.mean([b["input_ids"].shape[1] for b in batches]))
            graphs = GraphedEncoderStep(encoder, args.batch, device, print)
            graphs.prepare(
                padded_widths(tokens.lengths, full_rows, args.batch, GRAPH_TOKEN_MULTIPLE)
            )
            model = graphs
        if mode == "compile":
            model = torch.compile(encoder, dynamic=True)
        elif mode == "compile-static":
            torch._dynamo.config.cache_size_limit = 64
            model = torch.compile(encoder, dynamic=False)
        run(model, encoder, batches, 1, len(batches), optimizer_name)  # every shape once
        compile_s = time.perf_counter() - compile_started
        rate = run(model, encoder, batches, args.steps, args.warmup, optimizer_name)
        row = {
            "case": "encoder_ceiling",
            "encoder": args.encoder,
            "mode": mode,
            "optimizer": optimizer_name,
            "batch": args.batch,
            "mean_padded_tokens": round(tokens_per_batch, 1),
            "points_per_s": round(rate, 1),
            "first_pass_s": round(compile_s, 1),
            "device": torch.cuda.get_device_name(),
            "date": date.today().isoformat(),
        }
        emit(row, args.json)


if __name__ == "__main__":
    main()
