"""Share of a py-spy raw profile's samples inside `Recipe._step`, by the two innermost elmo_core
frames, then by leaf frame: `python profile_by_frames.py PROFILE.raw [ROWS]`."""

import collections
import re
import sys


def main(path: str, rows: int) -> None:
    """Print the step's samples by frame pair and by leaf."""
    pairs: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = in_step = 0
    with open(path) as lines:
        for line in lines:
            stack, count_text = line.rsplit(" ", 1)
            count = int(count_text)
            total += count
            frames = stack.split(";")
            if not any("Recipe._step" in frame for frame in frames):
                continue
            in_step += count
            ours = [
                re.sub(r" \(elmo_core/[^:]*:(\d+)\)", r":\1", frame)
                for frame in frames
                if "elmo_core/" in frame
            ]
            pairs[" > ".join(ours[-2:])] += count
            leaves[frames[-1].split(" (")[0][:60]] += count
    print("samples", total, "in _step", in_step)
    for key, count in pairs.most_common(rows):
        print(f"{100 * count / in_step:5.1f} {key}")
    print("--- leaf")
    for key, count in leaves.most_common(25):
        print(f"{100 * count / in_step:5.1f} {key}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40)
