"""Build the `wordnet-taxonomy` XMC dataset from Debian's `wordnet-base` package.

Task: given a WordNet noun synset's lemma names and gloss, predict the synsets it sits under: its
hypernym ancestors up to three steps up (instance hypernyms included), the wholes it is a member,
part or substance of (holonyms), and its topic, region and usage domains.

The input is the `.deb` itself (`apt-get download wordnet-base`); nothing else is read, and the
same `.deb` gives byte-identical files. Output: the Extreme Classification Repository "LF raw text"
layout (`trn_X.txt`, `tst_X.txt`, `Y.txt`, `trn_X_Y.txt`, `tst_X_Y.txt`, filter files, ids), the
WordNet license as `LICENSE`, and the build facts as `build.json`.

    apt-get download wordnet-base
    python scripts/build_wordnet_taxonomy.py \
        wordnet-base_1%3a3.0-37_all.deb examples/wordnet-taxonomy
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import re
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

WORDNET_DIR = "./usr/share/wordnet/"
COPYRIGHT = "./usr/share/doc/wordnet-base/copyright"
SEED = "wordnet-taxonomy:20261201"
HYPERNYM = ("@", "@i")
HOLONYM = ("#m", "#p", "#s")
DOMAIN = (";c", ";r", ";u")
MAX_LABEL_DEFINITION = 100
MAX_LABEL_LEMMAS = 3


@dataclass
class Synset:
    """One noun synset of `data.noun`: offset, lemma names, gloss and its noun pointers."""

    offset: str
    lemmas: list[str]
    gloss: str
    pointers: list[tuple[str, str]] = field(default_factory=list)  # (symbol, target offset)
    name: str = ""

    def targets(self, symbols: tuple[str, ...]) -> list[str]:
        """Offsets of the noun synsets this one points to with any of `symbols`."""
        return [t for s, t in self.pointers if s in symbols]


def read_deb(path: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """Members of the data archive under `usr/share` and the control fields of a `.deb` file."""
    blob = path.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError(f"{path}: not a Debian package (no ar header)")
    members: dict[str, bytes] = {}
    pos = 8
    while pos < len(blob):
        header = blob[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = blob[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    files: dict[str, bytes] = {}
    control: dict[str, str] = {}
    for name, data in members.items():
        if not name.startswith(("data.tar", "control.tar")):
            continue
        raw = lzma.decompress(data) if name.endswith(".xz") else data
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
            for info in tar.getmembers():
                if not info.isfile():
                    continue
                content = tar.extractfile(info)
                assert content is not None
                if name.startswith("data.tar"):
                    files[info.name] = content.read()
                elif info.name.lstrip("./") == "control":
                    for line in content.read().decode().splitlines():
                        if ":" in line and not line.startswith(" "):
                            key, value = line.split(":", 1)
                            control[key] = value.strip()
    return files, control


def parse_data_noun(text: str) -> dict[str, Synset]:
    """Every synset of `data.noun` (wndb(5WN) format), keyed by its 8-digit offset."""
    synsets: dict[str, Synset] = {}
    for line in text.splitlines():
        if line.startswith("  ") or not line.strip():
            continue  # the license header
        head, gloss = line.split(" | ", 1)
        fields = head.split()
        count = int(fields[3], 16)
        lemmas = [fields[4 + 2 * i] for i in range(count)]
        i = 4 + 2 * count
        pointers = []
        for _ in range(int(fields[i])):
            symbol, target, pos = fields[i + 1], fields[i + 2], fields[i + 3]
            if pos == "n":
                pointers.append((symbol, target))
            i += 4
        synsets[fields[0]] = Synset(fields[0], lemmas, " ".join(gloss.split()), pointers)
    return synsets


def name_synsets(synsets: dict[str, Synset], index_noun: str) -> None:
    """Give every synset its usual name `lemma.n.NN` (NN: the sense number of its first lemma)."""
    senses: dict[str, list[str]] = {}
    for line in index_noun.splitlines():
        if line.startswith("  ") or not line.strip():
            continue
        fields = line.split()
        n_synsets, n_pointers = int(fields[2]), int(fields[3])
        senses[fields[0]] = fields[-n_synsets:]
        assert len(fields) == 6 + n_pointers + n_synsets
    for synset in synsets.values():
        lemma = synset.lemmas[0].lower()
        synset.name = f"{lemma}.n.{senses[lemma].index(synset.offset) + 1:02d}"


def show(lemma: str) -> str:
    """A lemma as text: underscores become spaces."""
    return lemma.replace("_", " ")


def input_text(synset: Synset) -> str:
    """`lemma, lemma: gloss` with the gloss's examples; one line."""
    return f"{', '.join(show(lemma) for lemma in synset.lemmas)}: {synset.gloss}"


def label_text(synset: Synset) -> str:
    """`lemma, lemma: definition`: up to 3 lemmas, the definition without examples, <= 100 chars."""
    definition = synset.gloss.split('; "', 1)[0].strip().rstrip(";").strip()
    if len(definition) > MAX_LABEL_DEFINITION:
        cut = definition[: MAX_LABEL_DEFINITION + 1].rsplit(" ", 1)[0]
        definition = cut.rstrip(",;:") + " ..."
    lemmas = ", ".join(show(lemma) for lemma in synset.lemmas[:MAX_LABEL_LEMMAS])
    return f"{lemmas}: {definition}"


def ancestors(synsets: dict[str, Synset], offset: str, depth: int) -> dict[str, int]:
    """Hypernym ancestors (instance hypernyms included) up to `depth` steps: offset -> steps."""
    found: dict[str, int] = {}
    frontier = {offset}
    for step in range(1, depth + 1):
        frontier = {t for o in frontier for t in synsets[o].targets(HYPERNYM)}
        for target in sorted(frontier):
            found.setdefault(target, step)
    return found


def fraction(key: str) -> float:
    """sha256 of `SEED:key` read as a number in [0, 1)."""
    digest = hashlib.sha256(f"{SEED}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def mentions(text: str, synset: Synset) -> bool:
    """Whether a lemma of `synset` occurs in `text` as a whole word or phrase, ignoring case."""
    lowered = text.lower()
    return any(
        re.search(rf"(?<!\w){re.escape(show(lemma).lower())}(?!\w)", lowered)
        for lemma in synset.lemmas
    )


def build(deb: Path, out: Path, points: int, depth: int, test_share: float) -> dict[str, object]:
    """Write the dataset under `out`; return the build facts (also written to `build.json`)."""
    files, control = read_deb(deb)
    synsets = parse_data_noun(files[WORDNET_DIR + "data.noun"].decode("utf-8"))
    name_synsets(synsets, files[WORDNET_DIR + "index.noun"].decode("utf-8"))
    by_name = {s.name: s for s in synsets.values()}
    assert len(by_name) == len(synsets), "synset names must be unique"

    relation: dict[str, dict[str, str]] = {}  # point offset -> label offset -> relation kind
    for offset, synset in synsets.items():
        labels = {t: f"hypernym-{d}" for t, d in ancestors(synsets, offset, depth).items()}
        for kind, symbols in (("holonym", HOLONYM), ("domain", DOMAIN)):
            for target in synset.targets(symbols):
                labels.setdefault(target, kind)
        labels.pop(offset, None)
        if labels:
            relation[offset] = labels
    candidates = sorted(relation, key=lambda o: (fraction("sample:" + synsets[o].name), o))
    chosen = candidates[: min(points, len(candidates))]

    split: dict[str, list[str]] = {"trn": [], "tst": []}
    for offset in chosen:
        name = synsets[offset].name
        split["tst" if fraction("split:" + name) < test_share else "trn"].append(offset)
    for members in split.values():
        members.sort(key=lambda o: (fraction("order:" + synsets[o].name), o))

    label_offsets = sorted({t for o in chosen for t in relation[o]}, key=lambda o: synsets[o].name)
    label_id = {o: i for i, o in enumerate(label_offsets)}

    out.mkdir(parents=True, exist_ok=True)

    def write(name: str, lines: list[str]) -> None:
        (out / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    kinds: Counter[str] = Counter()
    verbatim: Counter[str] = Counter()
    for part, offsets in split.items():
        texts = [input_text(synsets[o]) for o in offsets]
        rows = []
        filters = []
        for row, offset in enumerate(offsets):
            ids = sorted(label_id[t] for t in relation[offset])
            rows.append(" ".join(f"{i}:1.00000" for i in ids))
            if offset in label_id:
                filters.append(f"{row} {label_id[offset]}")
            for target, kind in relation[offset].items():
                kinds[f"{part}:{kind}"] += 1
                if mentions(texts[row], synsets[target]):
                    verbatim[f"{part}:{kind}"] += 1
        write(f"{part}_X.txt", texts)
        write(f"{part}_X_Y.txt", [f"{len(offsets)} {len(label_offsets)}", *rows])
        write(f"{part}_filter_labels.txt", filters)
        write(f"{part}_ids.txt", [synsets[o].name for o in offsets])
    write("Y.txt", [label_text(synsets[o]) for o in label_offsets])
    write("Y_ids.txt", [synsets[o].name for o in label_offsets])
    (out / "LICENSE").write_text(wordnet_license(files[COPYRIGHT].decode("utf-8")))

    facts: dict[str, object] = {
        "source": deb.name,
        "source_sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
        "package": control.get("Package"),
        "version": control.get("Version"),
        "noun_synsets": len(synsets),
        "synsets_with_labels": len(relation),
        "points": len(chosen),
        "train_points": len(split["trn"]),
        "test_points": len(split["tst"]),
        "labels": len(label_offsets),
        "depth": depth,
        "seed": SEED,
        "positives_by_relation": dict(sorted(kinds.items())),
        "positives_mentioned_verbatim_by_relation": dict(sorted(verbatim.items())),
    }
    (out / "build.json").write_text(json.dumps(facts, indent=1) + "\n")
    return facts


def wordnet_license(copyright_file: str) -> str:
    """The `License: WordNet3.0` paragraph of the Debian copyright file, as plain text."""
    lines = copyright_file.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("License: WordNet3.0"))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        body.append("" if line.strip() == "." else line[1:])
    return "WordNet 3.0 license (from the Debian package wordnet-base)\n\n" + "\n".join(body) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: `build_wordnet_taxonomy.py DEB OUT [--points N] [--depth K]`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deb", type=Path, help="wordnet-base .deb (apt-get download wordnet-base)")
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument(
        "--points", type=int, default=50_000, help="seeded random sample of synsets (50000)"
    )
    parser.add_argument("--depth", type=int, default=3, help="hypernym steps taken as labels (3)")
    parser.add_argument("--test-share", type=float, default=0.25, help="test share (0.25)")
    args = parser.parse_args(argv)
    facts = build(args.deb, args.out, args.points, args.depth, args.test_share)
    json.dump(facts, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
