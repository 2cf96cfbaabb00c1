"""Whether the VM's two cores share their FMA units: the step's logits product (256 x 513 by
3,800 x 513, fp32, oneDNN, one thread) timed alone, then in two processes at once. Run from the
repository root: ``python bench/results/2026-12-04c-zen3/two_cores.py``."""

import subprocess
import sys

import torch
from step_products import mean_ms

REPEATS = 200


def product_rate() -> str:
    """Mean ms and GFLOP/s of the product on one thread."""
    torch.set_num_threads(1)
    linear = torch.ops.mkldnn._linear_pointwise
    e, w = torch.randn(256, 513), torch.randn(3800, 513)
    ms = mean_ms(lambda: linear(e, w, None, "none", [], ""), REPEATS)
    return f"{ms:.2f} ms {2 * 256 * 3800 * 513 / ms / 1e6:.1f} GFLOP/s"


def main() -> None:
    """Alone, then two at once."""
    if sys.argv[1:] == ["--one"]:
        print(product_rate())
        return
    command = [sys.executable, __file__, "--one"]
    alone = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    print(f"alone:        {alone}")
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for index, process in enumerate(both):
        out, _ = process.communicate()
        print(f"two at once {index + 1}: {out.strip()}")


if __name__ == "__main__":
    main()
