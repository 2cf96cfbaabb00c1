"""Build the debtags proxy dataset (LF raw layout) from this machine's apt lists: a Debian package's
`name: short description` -> its debtags (`Tag:` field of the bookworm main amd64 Packages index).

    python build_debtags.py OUT_DIR

Tags carried by one package only are dropped, and packages left without a tag; the rest are
shuffled with a fixed seed and cut 80 / 20 into train and test. Label texts are the tags with
their separators as spaces (`devel::lang:python` -> `devel lang python`). Prints the sha256 of
the Packages index read (the lists change with the archive's updates) and the counts.
"""

import collections
import hashlib
import random
import subprocess
import sys
from pathlib import Path

PACKAGES = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
SEED = "debtags:20261203"


def records(index: str) -> list[dict[str, str]]:
    """The index's records as field -> value (continuation lines joined with newlines)."""
    out = []
    for block in index.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.split("\n"):
            if line.startswith(" ") and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        out.append(fields)
    return out


def main(out: Path) -> None:
    """Write the dataset into `out` and print what was read and written."""
    command = ["/usr/lib/apt/apt-helper", "cat-file", PACKAGES]
    index = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    points = []
    for fields in records(index):
        if "Tag" not in fields or "Package" not in fields:
            continue
        tags = {t.strip() for t in fields["Tag"].replace("\n", " ").split(",") if t.strip()}
        short = fields.get("Description", "").split("\n")[0].strip()
        points.append((fields["Package"], f"{fields['Package']}: {short}", sorted(tags)))
    counts = collections.Counter(tag for _, _, tags in points for tag in tags)
    labels = sorted(tag for tag, count in counts.items() if count >= 2)
    index_of = {tag: i for i, tag in enumerate(labels)}
    kept = [(p, x, [index_of[t] for t in tags if t in index_of]) for p, x, tags in points]
    kept = [point for point in kept if point[2]]
    random.Random(SEED).shuffle(kept)
    cut = int(len(kept) * 0.8)
    out.mkdir(parents=True, exist_ok=True)
    label_texts = [t.replace("::", " ").replace(":", " ").replace("-", " ") for t in labels]
    (out / "Y.txt").write_text("".join(text + "\n" for text in label_texts))
    (out / "Y_ids.txt").write_text("".join(tag + "\n" for tag in labels))
    for name, part in (("trn", kept[:cut]), ("tst", kept[cut:])):
        (out / f"{name}_X.txt").write_text("".join(x.replace("\n", " ") + "\n" for _, x, _ in part))
        (out / f"{name}_ids.txt").write_text("".join(p + "\n" for p, _, _ in part))
        rows = "".join(" ".join(f"{i}:1.00000" for i in sorted(ys)) + "\n" for _, _, ys in part)
        (out / f"{name}_X_Y.txt").write_text(f"{len(part)} {len(labels)}\n{rows}")
    digest = hashlib.sha256(index.encode()).hexdigest()
    print(f"Packages index sha256 {digest}: {len(points)} tagged packages")
    print(f"{len(kept)} points ({cut} train, {len(kept) - cut} test), {len(labels)} labels")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
