#!/usr/bin/python3
"""Tests of bench/baselines.py on a tiny synthetic export (the format of `flexnas task export`): planted
signals must be learnt almost perfectly, the metrics must match hand-computed values (and so
datasets/metrics.cpp), and malformed input must exit 2 naming file:line.

    /usr/bin/python3 tests/python/baselines_test.py      (exit 77 = skipped: no numpy/scikit-learn)
"""
import contextlib
import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "bench", "baselines.py")
sys.path.insert(0, os.path.dirname(SCRIPT))

FILLER = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
          "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def write_task(root, info, splits):
    d = os.path.join(root, info["name"].replace(":", "-"))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "task.json"), "w") as f:
        json.dump(info, f)
    for split in info["splits"]:
        with open(os.path.join(d, split + ".jsonl"), "w") as f:
            for ex in splits.get(split, []):
                f.write(json.dumps(ex) + "\n")
    return d


def make_export(root, seed=0):
    """spam (a word predicts the label), glue:mrpc (pairs: overlap predicts the label), glue:stsb (target =
    overlap), brown-pos (every word has one tag)."""
    rng = random.Random(seed)
    sizes = {"train": 300, "dev": 100, "test": 100}

    def words(n, vocab=FILLER):
        return [rng.choice(vocab) for _ in range(n)]

    many = [f"v{i}" for i in range(300)]  # pairs: random sentences rarely share a word

    spam = {}
    for split, n in sizes.items():
        spam[split] = []
        for i in range(n):
            label = i % 2
            w = words(12)
            w.insert(rng.randrange(len(w) + 1), "viagra" if label else "meeting")
            spam[split].append({"segments": [" ".join(w)], "label": label})
    write_task(root, {"name": "spam", "kind": "sequence_classification", "num_labels": 2,
                      "label_names": ["ham", "spam"], "metrics": ["accuracy", "f1"], "score": "mean_accuracy_f1",
                      "eval_splits": ["dev"], "splits": ["train", "dev", "test"]}, spam)

    mrpc, stsb = {}, {}
    for split, n in (("train", 400), ("dev", 100)):
        mrpc[split], stsb[split] = [], []
        for i in range(n):
            a = words(8, many)
            label = i % 2
            b = rng.sample(a, len(a)) if label else words(8, many)  # a paraphrase reorders the same words
            mrpc[split].append({"segments": [" ".join(a), " ".join(b)], "label": label})
            k = rng.randint(0, 8)  # stsb: b keeps k words of a, the target grows with k
            b = a[:k] + words(8 - k, many)
            stsb[split].append({"segments": [" ".join(a), " ".join(b)], "target": round(5.0 * k / 8, 3)})
    glue = {"kind": "sequence_classification", "num_labels": 2, "label_names": ["0", "1"], "num_segments": 2,
            "eval_splits": ["dev"], "splits": ["train", "dev"]}
    write_task(root, dict(glue, name="glue:mrpc", metrics=["accuracy", "f1"], score="mean_accuracy_f1"), mrpc)
    write_task(root, dict(glue, name="glue:stsb", kind="regression", num_labels=1, label_names=[],
                          metrics=["pearson", "spearman"], score="mean_pearson_spearman"), stsb)

    lexicon = [(f"w{t}x{j}", t) for t in range(12) for j in range(5)]
    pos = {}
    for split, n in sizes.items():
        pos[split] = []
        for _ in range(n):
            sent = [rng.choice(lexicon) for _ in range(rng.randint(3, 10))]
            pos[split].append({"words": [w for w, _ in sent], "word_labels": [t for _, t in sent]})
    write_task(root, {"name": "brown-pos", "kind": "token_classification", "num_labels": 12,
                      "label_names": [f"T{t}" for t in range(12)], "metrics": ["accuracy"], "score": "accuracy",
                      "eval_splits": ["dev"], "splits": ["train", "dev", "test"]}, pos)


def run_cli(*args):
    p = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


class MetricsTest(unittest.TestCase):
    """Hand-computed values (the definitions of datasets/metrics.cpp)."""

    def setUp(self):
        import baselines
        self.b = baselines
        # tp 3, fp 1, fn 1, tn 3
        self.pred = [1, 1, 0, 1, 0, 0, 1, 0]
        self.gold = [1, 0, 0, 1, 0, 1, 1, 0]

    def test_accuracy_f1_mcc_binary(self):
        b = self.b
        self.assertAlmostEqual(b.accuracy(self.pred, self.gold), 0.75)
        self.assertAlmostEqual(b.f1_score(self.pred, self.gold), 6 / 8)  # 2tp / (2tp + fp + fn)
        self.assertAlmostEqual(b.matthews_corrcoef(self.pred, self.gold), (3 * 3 - 1 * 1) / 16)  # = 0.5
        self.assertEqual(b.f1_score([0, 0, 0], [0, 0, 0]), 0.0)  # no true positive -> 0
        self.assertEqual(b.matthews_corrcoef([1, 1, 1, 1], [0, 1, 0, 1]), 0.0)  # undefined -> 0

    def test_multiclass(self):
        b = self.b
        pred, gold = [0, 1, 2, 2], [0, 1, 1, 2]
        # R_K: c 3, s 4, p_k (1,1,2), t_k (1,2,1): (3*4 - 5) / sqrt((16 - 6)(16 - 6)) = 0.7
        self.assertAlmostEqual(b.matthews_corrcoef(pred, gold, 3), 0.7)
        self.assertAlmostEqual(b.matthews_corrcoef(pred, gold, 15), 0.7)  # absent classes change nothing
        # classes 0, 1, 2 occur (3, 4 of num_classes 5 do not): F1 1, 2/3, 2/3
        self.assertAlmostEqual(b.macro_f1(pred, gold, 5), (1 + 2 / 3 + 2 / 3) / 3)

    def test_pearson_spearman(self):
        b = self.b
        # dx (-1.5 -.5 .5 1.5), dy (-3 -1 0 4): sxy 11, sxx 5, syy 26
        self.assertAlmostEqual(b.pearson([1, 2, 3, 4], [2, 4, 5, 9]), 11 / math.sqrt(130))
        self.assertEqual(list(b.average_ranks([3, 1, 3, 2])), [3.5, 1.0, 3.5, 2.0])
        # ranks (1 2.5 2.5 4) and (1 3 2 4): 4.5 / sqrt(4.5 * 5)
        self.assertAlmostEqual(b.spearman([1, 2, 2, 3], [1, 3, 2, 4]), 3 / math.sqrt(10))
        self.assertEqual(b.pearson([0.1, 0.1, 0.1], [1, 2, 4]), 0.0)  # constant side -> 0
        self.assertEqual(b.spearman([1, 2, 3], [7, 7, 7]), 0.0)
        with self.assertRaises(ValueError):
            b.pearson([], [])

    def test_agrees_with_sklearn_and_scipy(self):
        import numpy as np
        from scipy import stats
        from sklearn import metrics
        b = self.b
        rng = np.random.default_rng(1)
        p, g = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
        self.assertAlmostEqual(b.matthews_corrcoef(p, g, 4), metrics.matthews_corrcoef(g, p))
        self.assertAlmostEqual(b.macro_f1(p, g, 4), metrics.f1_score(g, p, average="macro"))
        self.assertAlmostEqual(b.f1_score(p, g), metrics.f1_score(g, p, labels=[1], average="macro"))
        x, y = rng.normal(size=50), rng.integers(0, 5, 50).astype(float)  # y has ties
        self.assertAlmostEqual(b.pearson(x, y), stats.pearsonr(x, y)[0])
        self.assertAlmostEqual(b.spearman(x, y), stats.spearmanr(x, y)[0])

    def test_task_scores(self):
        b = self.b
        m = {"accuracy": 0.8, "f1": 0.6, "mcc": 0.3, "pearson": 0.9, "spearman": 0.7}
        self.assertAlmostEqual(b.task_score("accuracy", m), 0.8)
        self.assertAlmostEqual(b.task_score("mcc", m), 0.3)
        self.assertAlmostEqual(b.task_score("mean_accuracy_f1", m), 0.7)
        self.assertAlmostEqual(b.task_score("mean_pearson_spearman", m), 0.8)
        mnli = {"eval_splits": ["dev_matched", "dev_mismatched"]}
        self.assertAlmostEqual(b.combine_split_scores(mnli, {"dev_matched": 0.6, "dev_mismatched": 0.7}), 0.65)
        self.assertAlmostEqual(b.suite_score({"spam": 0.9, "brown-genre": 0.3, "brown-pos": 0.6}), 0.6)
        records = [{"task": "spam", "score": 0.9}, {"task": "glue:cola", "score": 0.2},
                   {"task": "glue:sst2", "score": 0.8}, {"task": "brown-pos", "score": 0.6}]
        self.assertEqual(b.suite_scores(records), {"glue": (0.5, ["glue:cola", "glue:sst2"])})  # flexnas: 2 of 3
        task = {"metrics": ["accuracy", "f1"], "num_labels": 2}
        self.assertEqual(b.compute_metrics(task, self.pred, self.gold), {"accuracy": 0.75, "f1": 0.75})


class PlantedSignalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import baselines
        cls.tmp = tempfile.TemporaryDirectory()
        cls.export = os.path.join(cls.tmp.name, "export")
        make_export(cls.export)
        out = os.path.join(cls.tmp.name, "out.json")
        cls.stdout, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(cls.stdout), contextlib.redirect_stderr(err):
            cls.rc = baselines.main([cls.export, "--json", out])
        cls.stderr = err.getvalue()
        with open(out) as f:
            cls.results = {t["task"]: t for t in json.load(f)["tasks"]}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_every_task_found(self):
        self.assertEqual(self.rc, 0, self.stderr)
        self.assertEqual(sorted(self.results), ["brown-pos", "glue:mrpc", "glue:stsb", "spam"])
        self.assertIn("TASK SCORE", self.stdout.getvalue())
        self.assertIn("SUITE SCORE", self.stdout.getvalue())  # glue: mrpc + stsb
        self.assertIn("spam: C=", self.stderr)  # progress on stderr

    def test_sequence_word_signal(self):
        r = self.results["spam"]
        for split in ("dev", "test"):
            self.assertGreaterEqual(r["splits"][split]["metrics"]["accuracy"], 0.98, r)
            self.assertGreaterEqual(r["splits"][split]["metrics"]["f1"], 0.98, r)
        self.assertAlmostEqual(r["score"], r["splits"]["dev"]["score"])
        self.assertIn(r["param"]["C"], (0.1, 1.0, 10.0, 100.0))

    def test_pair_overlap_signal(self):
        r = self.results["glue:mrpc"]
        self.assertEqual(list(r["splits"]), ["dev"])
        self.assertGreaterEqual(r["score"], 0.95, r)

    def test_regression_signal(self):
        r = self.results["glue:stsb"]
        m = r["splits"]["dev"]["metrics"]
        self.assertGreaterEqual(m["pearson"], 0.9, r)
        self.assertGreaterEqual(m["spearman"], 0.9, r)
        self.assertIn("alpha", r["param"])

    def test_token_signal(self):
        r = self.results["brown-pos"]
        self.assertEqual(r["unit"], "words")
        self.assertEqual(r["splits"]["dev"]["n"], sum(1 for _ in self._dev_words()))
        self.assertGreaterEqual(r["score"], 0.98, r)
        self.assertGreaterEqual(r["splits"]["test"]["score"], 0.98, r)

    def _dev_words(self):
        with open(os.path.join(self.export, "brown-pos", "dev.jsonl")) as f:
            for line in f:
                yield from json.loads(line)["words"]

    def test_grid_subset_is_reported(self):
        rc, out, err = run_cli(self.export, "--tasks", "brown-pos", "--select-max", "300")
        self.assertEqual(rc, 0, err)
        self.assertIn("subset of train", out)
        self.assertIn("fit on 300 of", err)


class ErrorTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.export = os.path.join(self.tmp.name, "export")
        make_export(self.export)

    def tearDown(self):
        self.tmp.cleanup()

    def corrupt(self, task, split, lineno, text):
        path = os.path.join(self.export, task, split + ".jsonl")
        with open(path) as f:
            lines = f.readlines()
        lines[lineno - 1] = text + "\n"
        with open(path, "w") as f:
            f.writelines(lines)
        return path

    def test_malformed_json_line(self):
        path = self.corrupt("spam", "train", 3, '{"segments": ["a b"], "label": ')
        rc, out, err = run_cli(self.export, "--tasks", "spam")
        self.assertEqual(rc, 2, err)
        self.assertIn(f"{path}:3: error: invalid JSON", err)
        self.assertEqual(out, "")
        rc, out, err = run_cli(self.export)  # all tasks: every file is checked before any fit
        self.assertEqual(rc, 2, err)
        self.assertIn(f"{path}:3: error: invalid JSON", err)
        self.assertNotIn("C=", err)

    def test_wrong_field(self):
        path = self.corrupt("brown-pos", "dev", 2, '{"words": ["a", "b"], "word_labels": [1]}')
        rc, _, err = run_cli(self.export, "--tasks", "brown-pos")
        self.assertEqual(rc, 2, err)
        self.assertIn(f"{path}:2: error: 2 words but 1 word_labels", err)
        path = self.corrupt("spam", "dev", 5, '{"segments": ["a b"], "label": 7}')
        rc, _, err = run_cli(self.export, "--tasks", "spam")
        self.assertEqual(rc, 2, err)
        self.assertIn(f"{path}:5: error: \"label\" 7 is out of range", err)

    def test_unknown_task_names_folder(self):
        rc, _, err = run_cli(self.export, "--tasks", "spam,glue:cola")
        self.assertEqual(rc, 2, err)
        self.assertIn(os.path.join(self.export, "glue-cola") + "/task.json", err)

    def test_missing_split_file_and_export_dir(self):
        os.remove(os.path.join(self.export, "spam", "test.jsonl"))
        rc, _, err = run_cli(self.export, "--tasks", "spam")
        self.assertEqual(rc, 2, err)
        self.assertIn(os.path.join(self.export, "spam", "test.jsonl") + ": error: missing", err)
        rc, _, err = run_cli(os.path.join(self.tmp.name, "nowhere"))
        self.assertEqual(rc, 2, err)
        self.assertIn("nowhere: error: no such directory", err)


if __name__ == "__main__":
    try:
        import numpy  # noqa: F401
        import scipy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as e:
        print(f"skipped: {e} (Debian: apt-get install python3-sklearn)")
        sys.exit(77)
    unittest.main()
