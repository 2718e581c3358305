#!/usr/bin/env python3
"""Make the vendored WordNet 3.0 gloss-classification data in this folder.

Reads WordNet 3.0's `data.noun` and `data.verb` (Debian's `wordnet-base` package installs
them in /usr/share/wordnet), labels each synset's definition by the synset's lexicographer
file (26 noun classes such as `noun.animal`, 15 verb classes such as `verb.motion`), draws a
seeded class-balanced subsample and a fixed train/test split per class, and writes one TSV
per part of speech (`noun.tsv`, `verb.tsv`).

    apt-get install -y wordnet-base
    python3 data/wordnet/make_subsample.py            # writes data/wordnet/{noun,verb}.tsv

Only the standard library is used; the output depends only on the WordNet files and the
constants below (the same WordNet files and seed give byte-identical output).

Rules:
- the text is the definition: the gloss after `|`, up to its first quoted example
  (`; "...`), with surrounding whitespace and trailing semicolons removed;
- a definition that occurs in more than one synset of the same part of speech is dropped
  entirely (it would be ambiguous, or the same text in train and test);
- per class, the eligible synsets are sorted by offset, shuffled with `random.Random(SEED)`
  (one generator per part of speech, classes in lexicographer-file order), and the first
  `TEST_PER_CLASS` become test rows and the next up to `TRAIN_PER_CLASS` train rows, so every
  class has exactly `TEST_PER_CLASS` test rows and the classes smaller than
  `TEST_PER_CLASS + TRAIN_PER_CLASS` give fewer train rows;
- rows are written by class, test rows first, each split in its drawn (shuffled) order, so
  the first `k` train rows of a class are a random sample of it.
"""

import argparse
import collections
import pathlib
import random

SEED = 20061
TEST_PER_CLASS = 20
TRAIN_PER_CLASS = 80

# WordNet 3.0's lexicographer files (lexnames(5WN)): number -> name.
LEXNAMES = {
    3: "noun.Tops", 4: "noun.act", 5: "noun.animal", 6: "noun.artifact",
    7: "noun.attribute", 8: "noun.body", 9: "noun.cognition", 10: "noun.communication",
    11: "noun.event", 12: "noun.feeling", 13: "noun.food", 14: "noun.group",
    15: "noun.location", 16: "noun.motive", 17: "noun.object", 18: "noun.person",
    19: "noun.phenomenon", 20: "noun.plant", 21: "noun.possession", 22: "noun.process",
    23: "noun.quantity", 24: "noun.relation", 25: "noun.shape", 26: "noun.state",
    27: "noun.substance", 28: "noun.time",
    29: "verb.body", 30: "verb.change", 31: "verb.cognition", 32: "verb.communication",
    33: "verb.competition", 34: "verb.consumption", 35: "verb.contact", 36: "verb.creation",
    37: "verb.emotion", 38: "verb.motion", 39: "verb.perception", 40: "verb.possession",
    41: "verb.social", 42: "verb.stative", 43: "verb.weather",
}


def definition(gloss):
    """The definition part of a gloss: up to the first quoted example."""
    cut = gloss.find('"')
    text = gloss if cut < 0 else gloss[:cut]
    return text.strip().rstrip(";").strip()


def read_synsets(path, pos):
    """(offset, lexfile, first lemma, definition) of every synset in a WordNet data file."""
    synsets = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the license header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            offset, lexfile, ss_type = fields[0], int(fields[1]), fields[2]
            assert ss_type == pos, f"{path}: synset {offset} has type {ss_type}"
            lemma = fields[4].replace("_", " ")
            text = definition(gloss)
            assert "\t" not in text and "\n" not in text
            if text:
                synsets.append((offset, lexfile, lemma, text))
    return synsets


def subsample(synsets, seed):
    """The seeded per-class split: a list of (split, synset) in class order."""
    counts = collections.Counter(s[3] for s in synsets)
    by_class = collections.defaultdict(list)
    for s in synsets:
        if counts[s[3]] == 1:
            by_class[s[1]].append(s)
    rng = random.Random(seed)
    rows = []
    for lexfile in sorted(by_class):
        members = sorted(by_class[lexfile])
        rng.shuffle(members)
        test = members[:TEST_PER_CLASS]
        train = members[TEST_PER_CLASS:TEST_PER_CLASS + TRAIN_PER_CLASS]
        assert len(test) == TEST_PER_CLASS, f"class {LEXNAMES[lexfile]} is too small"
        rows += [("test", s) for s in test] + [("train", s) for s in train]
    return rows, {lexfile: len(v) for lexfile, v in by_class.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet", default="/usr/share/wordnet", help="folder of data.noun, data.verb")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent), help="output folder")
    args = parser.parse_args()
    for pos, name in (("n", "noun"), ("v", "verb")):
        synsets = read_synsets(pathlib.Path(args.wordnet) / f"data.{name}", pos)
        rows, eligible = subsample(synsets, SEED)
        classes = sorted(eligible)
        out = pathlib.Path(args.out) / f"{name}.tsv"
        with open(out, "w", encoding="utf-8", newline="\n") as f:
            f.write("split\tlabel\tlexname\toffset\tlemma\tdefinition\n")
            for split, (offset, lexfile, lemma, text) in rows:
                label = classes.index(lexfile)
                f.write(f"{split}\t{label}\t{LEXNAMES[lexfile]}\t{offset}\t{lemma}\t{text}\n")
        splits = collections.Counter(split for split, _ in rows)
        print(f"{out}: {len(synsets)} synsets, {sum(eligible.values())} with a unique "
              f"definition, {len(classes)} classes, {splits['train']} train + "
              f"{splits['test']} test rows")
        for lexfile in classes:
            n_train = sum(1 for split, s in rows if split == "train" and s[1] == lexfile)
            print(f"  {label_line(classes.index(lexfile), LEXNAMES[lexfile], eligible[lexfile], n_train)}")


def label_line(label, lexname, eligible, n_train):
    return f"{label:2} {lexname:20} eligible {eligible:6}  train {n_train:3}  test {TEST_PER_CLASS}"


if __name__ == "__main__":
    main()
