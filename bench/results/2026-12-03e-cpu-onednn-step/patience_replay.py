"""Ad hoc replay (twelfth pass): which epoch early stopping with patience 2 instead of the default
3 would have selected, from the validation P@1 histories of every saved CPU/GPU run under
`bench/results/` (each distinct history once; runs of at least 4 evaluated epochs). A run stops
once `patience` evaluated epochs in a row have not reached the best P@1 so far (ties count as
reached, as in selection). Prints one line per run, marked where patience 2 selects another
epoch; its output is `patience_replay.txt`.

    python bench/results/2026-12-03e-cpu-onednn-step/patience_replay.py
"""

from __future__ import annotations

import json
from pathlib import Path


def replay(scores: list[float], patience: int) -> tuple[int, int]:
    """(index of the selected epoch, epochs run) under `patience`."""
    best, chosen = float("-inf"), 0
    for i, score in enumerate(scores):
        if score >= best:
            best, chosen = score, i
        elif i - chosen >= patience:
            return chosen, i + 1
    return chosen, len(scores)


def main() -> None:
    seen: set[tuple[float, ...]] = set()
    for path in sorted(Path("bench/results").glob("**/*metrics.json")):
        try:
            history = json.loads(path.read_text()).get("history")
        except (json.JSONDecodeError, AttributeError):
            continue
        if not isinstance(history, list) or not history or history[0].get("split") != "validation":
            continue
        scores = [e["P@1"] for e in history if e.get("P@1") is not None]
        key = tuple(round(s, 3) for s in scores)
        if len(scores) < 4 or key in seen:
            continue
        seen.add(key)
        (s3, r3), (s2, r2) = replay(scores, 3), replay(scores, 2)
        mark = "" if s3 == s2 else f"  <-- patience 2 selects {scores[s3] - scores[s2]:.2f} lower"
        print(
            f"{str(path.relative_to('bench/results'))[:58]:58s} p3: epoch {s3 + 1:2d}, ran {r3:2d},"
            f" {scores[s3]:.2f} | p2: epoch {s2 + 1:2d}, ran {r2:2d}{mark}"
        )


if __name__ == "__main__":
    main()
