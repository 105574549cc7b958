#!/usr/bin/python3
"""Classical baselines on flexnas's own task splits: TF-IDF + logistic regression (Ridge for regression,
per-word logistic regression for token tagging), so a searched transformer can be compared with a linear
model trained and scored on exactly the same examples with exactly the same metrics.

    /usr/bin/python3 bench/baselines.py EXPORT_DIR [--tasks spam,brown-genre,...] [--seed 0]
                                         [--json OUT.json] [--max-features N] [--select-max N]

EXPORT_DIR is what `flexnas task export --task T --out EXPORT_DIR` writes: one folder per task, named
after the task with ':' replaced by '-' (glue:cola -> glue-cola), holding task.json and one
<split>.jsonl per split listed in task.json "splits":
    task.json        {"name", "kind", "num_labels", "label_names", "metrics", "score", "eval_splits",
                      "splits"} and optionally "num_segments" (checked when present)
    sequence lines   {"segments": ["text", "optional second text"], "label": 1}
    regression lines {"segments": ["a", "b"], "target": 0.73}
    token lines      {"words": ["The", "cat"], "word_labels": [5, 0]}

For each task: fit on train for every value of a small fixed regularisation grid, keep the value whose
task score (the mean over the task's eval splits, as flexnas combines them) is best, and report the
metrics and task score of every non-train split. The eval splits are the ones the grid value was picked
on, so their numbers are slightly optimistic; a test split (spam, Brown) is not used for the choice.
  sequence tasks    TF-IDF word 1-2-grams (sublinear tf, min_df 2, vocabulary from train) + liblinear
                    logistic regression, C in {0.1, 1, 10, 100}; sentence pairs: see sequence_features
  regression        the same features + Ridge, alpha in {0.1, 1, 10, 100}
  token tasks       per-word logistic regression on hashed word/affix/shape/context features, fitted by
                    SGD (log loss) with alpha = 1/(C n), the same C grid
Train sets larger than --select-max rows (default 50,000: mnli, qqp, qnli, sst2, brown-pos) have the grid
fitted on a seeded subset and only the chosen value fitted on all of train; the output says so. On one
core the largest tasks take 1-3 minutes (brown-pos ~1 min, mnli-sized ~2.5 min).

Metrics, task and suite scores reproduce datasets/metrics.cpp: accuracy, F1 of class 1, macro-F1 over the
classes present, Gorodkin's multi-class MCC, Pearson, Spearman with average ranks, 0 where flexnas returns
0; a suite score is the mean of its task scores (flexnas = spam + brown-genre + brown-pos, glue = the GLUE
tasks present). Differences from what a flexnas model is scored on: the baseline sees whole texts (flexnas
truncates to the task's token budget, e.g. 128; spam 256) and, for token tasks, scores every word
(flexnas does not score words cut off by that budget).

Errors in the export (a missing folder or file, a malformed line: file:line and what is wrong) exit 2.
Everything runs on one core (BLAS/OpenMP threads default to 1); progress goes to stderr.
"""
import argparse
import json
import math
import os
import sys
import time
import warnings

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

KINDS = ("sequence_classification", "regression", "token_classification")
SCORE_RULES = {  # score rule -> the metrics it needs (metrics.cpp task_score)
    "accuracy": ("accuracy",),
    "mcc": ("mcc",),
    "mean_accuracy_f1": ("accuracy", "f1"),
    "mean_pearson_spearman": ("pearson", "spearman"),
}
CLASS_METRICS = ("accuracy", "f1", "macro_f1", "mcc")
VALUE_METRICS = ("pearson", "spearman")
C_GRID = (0.1, 1.0, 10.0, 100.0)        # LogisticRegression C (inverse regularisation)
ALPHA_GRID = (0.1, 1.0, 10.0, 100.0)    # Ridge alpha
HASH_FEATURES = 2 ** 20                 # token features are hashed into this many columns
SGD_EPOCHS = 10                         # token tasks: SGD passes over the train words
LIBLINEAR_ITERS = 200                   # liblinear's iteration limit
DEFAULT_SELECT_MAX = 50_000             # grid fits on at most this many train rows (--select-max)


class ExportError(Exception):
    """A problem with the input; main() prints it and exits 2."""


def progress(msg):
    print("baselines: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# Metrics: datasets/metrics.cpp in numpy.

def _check_sizes(a, b, what):
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(a)} predictions for {len(b)} gold values")
    if len(a) == 0:
        raise ValueError(f"{what}: no examples")


def accuracy(pred, gold):
    _check_sizes(pred, gold, "accuracy")
    return float(np.mean(np.asarray(pred) == np.asarray(gold)))


def f1_score(pred, gold, positive=1):
    """F1 of class `positive`; 0 when there are no true positives."""
    _check_sizes(pred, gold, "f1")
    p, g = np.asarray(pred) == positive, np.asarray(gold) == positive
    tp, fp, fn = float(np.sum(p & g)), float(np.sum(p & ~g)), float(np.sum(~p & g))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def macro_f1(pred, gold, num_classes):
    """Unweighted mean F1 over the classes 0..num_classes-1 that occur in gold or pred."""
    _check_sizes(pred, gold, "macro_f1")
    seen = set(np.unique(pred).tolist()) | set(np.unique(gold).tolist())
    present = [c for c in range(num_classes) if c in seen]
    return 0.0 if not present else sum(f1_score(pred, gold, c) for c in present) / len(present)


def matthews_corrcoef(pred, gold, num_classes=2):
    """Gorodkin's R_K (the usual MCC for two classes); 0 when undefined."""
    _check_sizes(pred, gold, "mcc")
    p, g = np.asarray(pred, dtype=np.int64), np.asarray(gold, dtype=np.int64)
    k = max(int(num_classes), int(max(p.max(), g.max())) + 1)
    pk = np.bincount(p, minlength=k).astype(np.float64)
    tk = np.bincount(g, minlength=k).astype(np.float64)
    c, s = float(np.sum(p == g)), float(len(p))
    denom = math.sqrt((s * s - pk @ pk) * (s * s - tk @ tk))
    return 0.0 if denom == 0 else (c * s - pk @ tk) / denom


def pearson(x, y):
    """Pearson correlation; 0 when a side is constant."""
    _check_sizes(x, y, "pearson")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    # Exact constancy test too: a float mean of a constant can differ from it in the last bit.
    if sxx == 0 or syy == 0 or np.all(x == x[0]) or np.all(y == y[0]):
        return 0.0
    return float(dx @ dy) / math.sqrt(sxx * syy)


def average_ranks(v):
    """1-based ranks; tied values share the average of their ranks."""
    v = np.asarray(v, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    sv = v[order]
    starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])  # first index of each run of equal values
    ends = np.r_[starts[1:], len(sv)] - 1
    r = np.empty(len(v))
    r[order] = np.repeat((starts + ends) / 2.0 + 1.0, ends - starts + 1)
    return r


def spearman(x, y):
    _check_sizes(x, y, "spearman")
    return pearson(average_ranks(x), average_ranks(y))


def compute_metrics(task, pred, gold):
    """The task's metrics on one split (class ids, or values for regression)."""
    out = {}
    for name in task["metrics"]:
        if name == "accuracy":
            out[name] = accuracy(pred, gold)
        elif name == "f1":
            out[name] = f1_score(pred, gold, 1)
        elif name == "macro_f1":
            out[name] = macro_f1(pred, gold, task["num_labels"])
        elif name == "mcc":
            out[name] = matthews_corrcoef(pred, gold, task["num_labels"])
        elif name == "pearson":
            out[name] = pearson(pred, gold)
        elif name == "spearman":
            out[name] = spearman(pred, gold)
        else:
            raise ValueError(f"unknown metric {name}")
    return out


def task_score(rule, m):
    if rule == "accuracy":
        return m["accuracy"]
    if rule == "mcc":
        return m["mcc"]
    if rule == "mean_accuracy_f1":
        return (m["accuracy"] + m["f1"]) / 2
    if rule == "mean_pearson_spearman":
        return (m["pearson"] + m["spearman"]) / 2
    raise ValueError(f"unknown score rule {rule}")


def combine_split_scores(task, scores):
    """Mean of the split scores over the eval splits (only mnli has two)."""
    return sum(scores[s] for s in task["eval_splits"]) / len(task["eval_splits"])


def suite_score(task_scores):
    """A suite's score (metrics.cpp suite_score): the mean of its tasks' scores."""
    if not task_scores:
        raise ValueError("a suite score needs at least one task score")
    return sum(task_scores.values()) / len(task_scores)


def suite_scores(records):
    """{suite: (score, tasks)} as flexnas's --task suites expand: flexnas = spam + brown-genre + brown-pos
    (all three needed), glue = the GLUE tasks present."""
    scores = {r["task"]: r["score"] for r in records}
    out = {}
    flexnas = ("spam", "brown-genre", "brown-pos")
    if all(t in scores for t in flexnas):
        out["flexnas"] = (suite_score({t: scores[t] for t in flexnas}), list(flexnas))
    glue = {t: v for t, v in scores.items() if t.startswith("glue:")}
    if glue:
        out["glue"] = (suite_score(glue), sorted(glue))
    return out


# ---------------------------------------------------------------------------------------------------
# Reading the export.

def folder_name(task_name):
    return task_name.replace(":", "-")


def _need(obj, key, types, where):
    if key not in obj:
        raise ExportError(f"{where}: missing \"{key}\"")
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, types):
        raise ExportError(f"{where}: \"{key}\" has the wrong type ({type(v).__name__})")
    return v


def _string_list(obj, key, where, allow_empty=False):
    v = _need(obj, key, list, where)
    if not allow_empty and not v:
        raise ExportError(f"{where}: \"{key}\" is empty")
    if not all(isinstance(s, str) for s in v):
        raise ExportError(f"{where}: \"{key}\" must be a list of strings")
    return v


def read_task_json(folder):
    path = os.path.join(folder, "task.json")
    try:
        with open(path, encoding="utf-8") as f:
            t = json.load(f)
    except FileNotFoundError:
        raise ExportError(f"{path}: error: missing (is {folder} a task folder of `flexnas task export`?)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: error: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}:{e.lineno}:{e.colno}: error: invalid JSON: {e.msg}") from None
    where = f"{path}: error"
    if not isinstance(t, dict):
        raise ExportError(f"{where}: not a JSON object")
    _need(t, "name", str, where)
    kind = _need(t, "kind", str, where)
    if kind not in KINDS:
        raise ExportError(f"{where}: kind '{kind}'; allowed: {', '.join(KINDS)}")
    n = _need(t, "num_labels", int, where)
    if n < 1 or (kind != "regression" and n < 2):
        raise ExportError(f"{where}: num_labels {n} is too small for kind {kind}")
    t.setdefault("label_names", [])
    metrics = _string_list(t, "metrics", where)
    allowed = VALUE_METRICS if kind == "regression" else CLASS_METRICS
    for m in metrics:
        if m not in allowed:
            raise ExportError(f"{where}: metric '{m}' for kind {kind}; allowed: {', '.join(allowed)}")
    rule = _need(t, "score", str, where)
    if rule not in SCORE_RULES:
        raise ExportError(f"{where}: score '{rule}'; allowed: {', '.join(SCORE_RULES)}")
    for m in SCORE_RULES[rule]:
        if m not in metrics:
            raise ExportError(f"{where}: score '{rule}' needs metric '{m}', which \"metrics\" does not list")
    splits = _string_list(t, "splits", where)
    if "train" not in splits:
        raise ExportError(f"{where}: \"splits\" has no train split")
    for s in _string_list(t, "eval_splits", where):
        if s not in splits or s == "train":
            raise ExportError(f"{where}: eval split '{s}' is not one of the non-train splits {splits}")
    if "num_segments" in t and _need(t, "num_segments", int, where) not in (1, 2):
        raise ExportError(f"{where}: num_segments {t['num_segments']}; must be 1 or 2")
    if os.path.basename(os.path.normpath(folder)) != folder_name(t["name"]):
        progress(f"warning: {path}: task '{t['name']}' in folder {os.path.basename(folder)!r}")
    return t


def _label(v, num_labels, key, err):
    if isinstance(v, bool) or not isinstance(v, int):
        raise err(f"\"{key}\" must be an integer, got {json.dumps(v)[:40]}")
    if not 0 <= v < num_labels:
        raise err(f"\"{key}\" {v} is out of range (num_labels {num_labels})")
    return v


def read_split(path, task):
    """Examples of one split: sequence tasks (segments, label-or-target), token tasks (words, labels)."""
    kind, nl = task["kind"], task["num_labels"]
    out = []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise ExportError(f"{path}: error: missing (task.json lists split "
                          f"'{os.path.basename(path)[:-6]}')") from None
    except OSError as e:
        raise ExportError(f"{path}: error: cannot open: {e.strerror}") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            def err(what, lineno=lineno):
                return ExportError(f"{path}:{lineno}: error: {what}")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise err(f"not UTF-8 ({e.reason} at byte {e.start})") from None
            if not line.strip():
                raise err("empty line (expected one JSON object per line)")
            try:
                ex = json.loads(line)
            except json.JSONDecodeError as e:
                raise err(f"invalid JSON at column {e.colno}: {e.msg}") from None
            if not isinstance(ex, dict):
                raise err(f"expected a JSON object, got {type(ex).__name__}")
            if kind == "token_classification":
                words, labels = ex.get("words"), ex.get("word_labels")
                if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                    raise err("\"words\" must be a list of strings")
                if not isinstance(labels, list):
                    raise err("\"word_labels\" must be a list of integers")
                if len(words) != len(labels):
                    raise err(f"{len(words)} words but {len(labels)} word_labels")
                out.append((words, [_label(v, nl, "word_labels", err) for v in labels]))
                continue
            segs = ex.get("segments")
            if not isinstance(segs, list) or not 1 <= len(segs) <= 2 or not all(isinstance(s, str) for s in segs):
                raise err("\"segments\" must be a list of 1 or 2 strings")
            want = task.get("num_segments") or (len(out[0][0]) if out else len(segs))
            if len(segs) != want:
                raise err(f"{len(segs)} segments; expected {want} (as in task.json or the first line)")
            if kind == "regression":
                y = ex.get("target")
                if isinstance(y, bool) or not isinstance(y, (int, float)) or not math.isfinite(y):
                    raise err("\"target\" must be a finite number")
                out.append((segs, float(y)))
            else:
                if "label" not in ex:
                    raise err("missing \"label\"")
                out.append((segs, _label(ex["label"], nl, "label", err)))
    return out


def find_task_folders(export_dir, names):
    """The folders of the requested tasks, or every folder of export_dir that holds a task.json."""
    if not os.path.isdir(export_dir):
        raise ExportError(f"{export_dir}: error: no such directory (write it with `flexnas task export`)")
    if names:
        folders = []
        for n in names:
            folder = os.path.join(export_dir, folder_name(n))
            if not os.path.isfile(os.path.join(folder, "task.json")):
                found = sorted(d for d in os.listdir(export_dir)
                               if os.path.isfile(os.path.join(export_dir, d, "task.json")))
                raise ExportError(f"error: --tasks: task '{n}': no {folder}/task.json "
                                  f"(tasks in {export_dir}: {', '.join(found) or 'none'})")
            if folder not in folders:
                folders.append(folder)
        return folders
    folders = sorted(os.path.join(export_dir, d) for d in os.listdir(export_dir)
                     if os.path.isfile(os.path.join(export_dir, d, "task.json")))
    if not folders:
        raise ExportError(f"{export_dir}: error: no task folders (none holds a task.json)")
    return folders


# ---------------------------------------------------------------------------------------------------
# Models.

def _fit(model, X, y):
    """Fits; returns (model, converged)."""
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y)
    return model, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def sequence_features(task, data, max_features):
    """TF-IDF features of every split, vocabulary and idf from train.

    One-segment tasks: word 1-2-grams of the text. Two-segment tasks (GLUE pairs) use one vectoriser for
    both sides but keep them apart: [A | B | A*B | cos(A, B)]. Joining the texts with " [SEP] " would
    lose which side a word is on (premise vs hypothesis), and a linear model on either form cannot see
    word overlap, which is most of the signal of mrpc, qqp and stsb; the elementwise product A*B (the
    n-grams both sides share, weighted) and its sum, the cosine of the L2-normalised rows, add it.
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, token_pattern=r"(?u)\b\w+\b",
                          max_features=max_features or None)
    two = len(data["train"][0][0]) == 2
    train_texts = [s for segs, _ in data["train"] for s in segs]
    try:
        vec.fit(train_texts)
    except ValueError as e:  # empty vocabulary
        raise ExportError(f"task {task['name']}: train texts give no features: {e}") from None
    feats = {}
    for split, examples in data.items():
        if not examples:
            continue
        if not two:
            feats[split] = vec.transform([segs[0] for segs, _ in examples]).tocsr()
            continue
        a = vec.transform([segs[0] for segs, _ in examples])
        b = vec.transform([segs[1] for segs, _ in examples])
        ab = a.multiply(b).tocsr()
        cos = sparse.csr_matrix(np.asarray(ab.sum(axis=1)))
        feats[split] = sparse.hstack([a, b, ab, cos], format="csr")
    return feats, len(vec.vocabulary_), ("pair [A|B|A*B|cos]" if two else "text")


def word_features(words, i):
    """Feature strings of words[i] (hashed later)."""
    w = words[i]
    lw = w.lower()
    f = ["bias", "w=" + lw, "s1=" + lw[-1:], "s2=" + lw[-2:], "s3=" + lw[-3:], "p1=" + lw[:1],
         "prev=" + (words[i - 1].lower() if i > 0 else "<s>"),
         "next=" + (words[i + 1].lower() if i + 1 < len(words) else "</s>")]
    if w[:1].isupper():
        f.append("cap" if i > 0 else "cap-first")
    if w.isupper() and len(w) > 1:
        f.append("allcaps")
    if any(c.isdigit() for c in w):
        f.append("digit")
    if "-" in w:
        f.append("hyphen")
    if not any(c.isalnum() for c in w):
        f.append("punct")
    return f


def token_matrix(sentences):
    from scipy import sparse
    from sklearn.feature_extraction import FeatureHasher
    if not any(words for words, _ in sentences):
        return sparse.csr_matrix((0, HASH_FEATURES)), np.zeros(0, dtype=np.int64)
    hasher = FeatureHasher(n_features=HASH_FEATURES, input_type="string", alternate_sign=False)
    X = hasher.transform(word_features(words, i) for words, _ in sentences for i in range(len(words)))
    y = np.fromiter((l for _, labels in sentences for l in labels), dtype=np.int64)
    return X.tocsr(), y


def make_model(kind, value, n_train, seed):
    from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
    if kind == "regression":
        return Ridge(alpha=value, random_state=seed)
    if kind == "token_classification":
        # The objective of LogisticRegression(C=value) (alpha = 1 / (C n)), fitted by SGD: liblinear needs
        # ~4 min per grid on 300 k words for the 12 one-vs-rest classes, SGD ~40 s per C on all 0.9 M words.
        return SGDClassifier(loss="log_loss", alpha=1.0 / (value * n_train), max_iter=SGD_EPOCHS,
                             random_state=seed)
    return LogisticRegression(C=value, solver="liblinear", class_weight=None, max_iter=LIBLINEAR_ITERS,
                              random_state=seed)


def run_task(task, data, args):
    """Fits the grid, returns the result record (see --json)."""
    name, kind = task["name"], task["kind"]
    token = kind == "token_classification"
    t0 = time.time()
    notes = []
    if token:
        mats = {s: token_matrix(ex) for s, ex in data.items() if ex}
        cols = np.unique(mats["train"][0].indices)  # hashed columns seen in train (the rest get weight 0)
        feats = {s: m[0][:, cols] for s, m in mats.items()}
        gold = {s: m[1] for s, m in mats.items()}
        model_desc = (f"per-word logistic regression (log-loss SGD, one-vs-rest, at most {SGD_EPOCHS} epochs) "
                      "on hashed word/affix/shape/context features")
    else:
        feats, vocab, form = sequence_features(task, data, args.max_features)
        gold = {s: np.array([y for _, y in ex]) for s, ex in data.items() if ex}
        model_desc = (f"tfidf word 1-2-grams ({vocab} terms, {form}) + "
                      + ("ridge" if kind == "regression" else "logistic regression (liblinear)"))
    unit = "words" if token else "examples"
    for s in [s for s, g in gold.items() if len(g) == 0]:  # token splits of empty sentences only
        del feats[s], gold[s]
    for s in ["train"] + task["eval_splits"]:
        if s not in gold:
            raise ExportError(f"task {name}: split {s} has no {unit}")
    n_train = feats["train"].shape[0]
    progress(f"{name}: features ready, {feats['train'].shape[1]} columns, {n_train} train {unit} "
             f"({time.time() - t0:.1f} s)")
    if kind != "regression" and len(np.unique(gold["train"])) < 2:
        raise ExportError(f"task {name}: the train split has only one label; nothing to learn")

    def eval_score(model):
        scores = {s: task_score(task["score"], compute_metrics(task, model.predict(feats[s]), gold[s]))
                  for s in task["eval_splits"]}
        return combine_split_scores(task, scores)

    # Large train sets: the grid is fitted on a seeded subset of train rows, the chosen value once on all.
    # C (not alpha = 1/(C n)) is what carries over between sizes.
    X, y = feats["train"], gold["train"]
    subset = args.select_max and n_train > args.select_max
    if subset:
        rows = np.sort(np.random.default_rng(args.seed).choice(n_train, args.select_max, replace=False))
        X, y = X[rows], y[rows]
        if kind != "regression" and len(np.unique(y)) < 2:
            X, y, subset = feats["train"], gold["train"], False
    param = "alpha" if kind == "regression" else "C"
    grid = ALPHA_GRID if kind == "regression" else C_GRID
    best, grid_scores = None, []
    for value in grid:
        t1 = time.time()
        model, converged = _fit(make_model(kind, value, X.shape[0], args.seed), X, y)
        score = eval_score(model)
        grid_scores.append(score)
        progress(f"{name}: {param}={value:g}: eval score {score:.4f}"
                 f"{f' (fit on {X.shape[0]} of {n_train} train {unit})' if subset else ''}"
                 f"{'' if converged else ' (stopped at the iteration limit)'} ({time.time() - t1:.1f} s)")
        if best is None or score > best[0]:  # ties keep the stronger regularisation (earlier in the grid)
            best = (score, value, model, converged)
    _, value, model, converged = best
    if subset:
        t1 = time.time()
        notes.append(f"{param} picked with fits on a seeded {args.select_max}-{unit[:-1]} subset of train "
                     f"(--select-max); the final model is fitted on all {n_train}")
        model, converged = _fit(make_model(kind, value, n_train, args.seed), feats["train"], gold["train"])
        progress(f"{name}: {param}={value:g} on all {n_train} train {unit} ({time.time() - t1:.1f} s)")
    if not converged:
        limit = {"token_classification": f"{SGD_EPOCHS} SGD epochs",
                 "sequence_classification": f"{LIBLINEAR_ITERS} liblinear iterations"}.get(kind, "max_iter")
        notes.append(f"the reported model stopped at its solver's iteration limit ({limit})")

    results = {}
    for s in task["splits"]:
        if s == "train":
            continue
        if s not in gold:
            results[s] = {"n": 0, "metrics": {}, "score": None}
            continue
        m = compute_metrics(task, model.predict(feats[s]), gold[s])
        results[s] = {"n": int(len(gold[s])), "metrics": m, "score": task_score(task["score"], m)}
    return {
        "task": name, "kind": kind, "model": model_desc, "param": {param: value},
        "grid": {param: list(grid), "eval_score": grid_scores, "fit_rows": int(X.shape[0])},
        "train_n": int(n_train), "unit": unit,
        "splits": results, "eval_splits": task["eval_splits"], "score_rule": task["score"],
        "score": combine_split_scores(task, {s: results[s]["score"] for s in task["eval_splits"]}),
        "seconds": round(time.time() - t0, 2), "notes": notes,
    }


# ---------------------------------------------------------------------------------------------------
# Output.

def print_table(records, out=None):
    out = out or sys.stdout
    print(f"{'task':<16} {'split':<15} {'n':>8} {'score':>7}  metrics", file=out)
    for r in records:
        for s, v in r["splits"].items():
            if v["n"] == 0:
                print(f"{r['task']:<16} {s:<15} {0:>8} {'-':>7}  (empty split)", file=out)
                continue
            ms = "  ".join(f"{k} {x:.4f}" for k, x in v["metrics"].items())
            print(f"{r['task']:<16} {s:<15} {v['n']:>8} {v['score']:>7.4f}  {ms}", file=out)
        (param, value), = r["param"].items()
        print(f"{r['task']:<16} {'TASK SCORE':<15} {'':>8} {r['score']:>7.4f}  "
              f"mean over {'+'.join(r['eval_splits'])} ({r['score_rule']}); {param}={value:g} picked there; "
              f"{r['train_n']} train {r['unit']}; {r['seconds']:.1f} s", file=out)
        print(f"{'':<16} model: {r['model']}", file=out)
        for note in r["notes"]:
            print(f"{'':<16} note: {note}", file=out)
    for suite, (score, tasks) in suite_scores(records).items():
        what = f"{len(tasks)} of 9 GLUE tasks" if suite == "glue" else ", ".join(tasks)
        print(f"{suite:<16} {'SUITE SCORE':<15} {'':>8} {score:>7.4f}  mean task score ({what})", file=out)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="TF-IDF + logistic regression baselines on the splits written by `flexnas task export`.")
    ap.add_argument("export_dir", metavar="EXPORT_DIR", help="folder written by `flexnas task export --out`")
    ap.add_argument("--tasks", default="", help="comma-separated task names (spam,brown-genre,glue:cola or "
                                                "glue-cola); default: every task folder in EXPORT_DIR")
    ap.add_argument("--seed", type=int, default=0, help="seed of the solvers and of any subsampling")
    ap.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    ap.add_argument("--max-features", type=int, default=0, metavar="N",
                    help="keep the N most frequent TF-IDF terms (default 0: all with min_df 2)")
    ap.add_argument("--select-max", type=int, default=DEFAULT_SELECT_MAX, metavar="N",
                    help="fit the grid on a seeded subset of at most N train rows (examples; words for token "
                         "tasks), then the chosen value once on all of train (0: grid on all; "
                         "default %(default)s)")
    a = ap.parse_args(argv)
    if a.max_features < 0:
        ap.error(f"--max-features: {a.max_features}; must be >= 0")
    if a.select_max < 0:
        ap.error(f"--select-max: {a.select_max}; must be >= 0")
    a.task_names = [t.strip() for t in a.tasks.split(",") if t.strip()]
    return a


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("error: scikit-learn is missing for this Python (Debian: apt-get install python3-sklearn)",
              file=sys.stderr)
        return 2
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        print(f"{args.json}: error: --json: the folder does not exist", file=sys.stderr)
        return 2
    records = []
    try:
        folders = find_task_folders(args.export_dir, args.task_names)

        def load(folder):
            task = read_task_json(folder)
            data = {s: read_split(os.path.join(folder, s + ".jsonl"), task) for s in task["splits"]}
            for s in ["train"] + task["eval_splits"]:
                if not data[s]:
                    raise ExportError(f"{os.path.join(folder, s + '.jsonl')}: error: no examples "
                                      f"({'train' if s == 'train' else 'eval'} split)")
            return task, data

        if len(folders) > 1:  # check every file before minutes of fitting (then read again, task by task)
            t0 = time.time()
            for folder in folders:
                load(folder)
            progress(f"checked {len(folders)} task folders ({time.time() - t0:.1f} s)")
        for folder in folders:
            t0 = time.time()
            task, data = load(folder)
            sizes = " ".join(f"{s} {len(ex)}" for s, ex in data.items())
            progress(f"{task['name']}: read {sizes} ({time.time() - t0:.1f} s)")
            record = run_task(task, data, args)
            record["task_json"] = task  # as exported (split seed etc. if the export records them)
            records.append(record)
    except ExportError as e:
        print(str(e), file=sys.stderr)
        return 2
    print_table(records)
    if args.json:
        doc = {"tool": "bench/baselines.py", "export_dir": args.export_dir, "seed": args.seed,
               "max_features": args.max_features, "select_max": args.select_max, "tasks": records,
               "suites": {k: {"score": v, "tasks": t} for k, (v, t) in suite_scores(records).items()}}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
