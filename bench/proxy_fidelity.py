#!/usr/bin/python3
"""Proxy fidelity: does the campaign's cheap evaluation rank architectures like a costlier one?

Takes a small set of architectures spread over the campaign's design space, evaluates each with the
campaign's builtin evaluator budget ("cheap": `flexnas pretrain` then `flexnas finetune`, exactly
the commands launch/evaluators/evaluator.cpp builds for a cold trial) and with a FACTOR-times larger budget,
then reports Spearman's rho between the two score vectors with a bootstrap 95% interval (resampling
architectures), Kendall's tau-b, a permutation p-value, and the fraction of collapsed evaluations
(the best fine-tuned model predicts one class for the whole dev split) per budget. Target: rho >= 0.7.
Entry point: bench/proxy_fidelity.sh (same flags); see --help.

Budgets (both read from the campaign YAML's `evaluator:` section, so they follow it when it changes:
steps, epochs, task, tokenizer, corpus, data_dir, precision, device, pretrain_args, finetune_args):
  cheap  pretrain --steps STEPS [pretrain_args]; finetune --epochs EPOCHS [finetune_args]: the
         campaign's evaluation of an architecture trained from scratch (warm starts and `warm_steps`
         are not used: every run here starts from random weights).
  xF     (F = --factor, default 8) pretraining: F x the steps; step-valued pretrain_args
         (--warmup-steps >= 0, --eval-every, --save-every, --stop-after) are scaled too, everything
         else (batch, sequence length, peak lr, ...) is unchanged, so F x the pretraining tokens.
         Fine-tuning per --finetune-budget:
           full   (default) the whole training split (--max-train-examples dropped), same epochs and
                  hyper-parameters. For spam that is 4836 examples instead of 1200 (4.0x the updates):
                  the split caps "8x the fine-tuning data", and more epochs on a tiny split would test
                  over-fitting rather than a better estimate of the architecture's quality.
           scaled --max-train-examples x F (still capped by the split; the same as full for spam at 8x)
           same   fine-tuning exactly as cheap: isolates the effect of the pretraining budget.
Both budgets use the same --seed for pretraining and fine-tuning (same initialisation, masking and
data order), and --threads 1 per process (forced, replacing the campaign's value if any).

Architecture selection (--selection):
  stratified (default) a pool of `flexnas space sample -d DESIGN_SPACE --n POOL --seed SEED` (with
         the campaign's layers_per_stack / heterogeneous_feed_forward / increasing; POOL = the whole
         space when it has at most 20,000 architectures, i.e. a seeded shuffle of it) is split into
         cells by (encoder layers, first-layer hidden size, first-layer operation). In the test space
         that is 2 depths x 2 widths x 3 ops = 12 cells, so 12 architectures = one per cell: both
         depths, both widths and all three operations each appear 6/6/4 times as the first block,
         while the rest of each architecture (heads, feed-forward stacks, the second stack's op and
         width, op parameters) stays random, i.e. as mixed as the space. Cells are visited in an
         order where consecutive picks differ in depth, width and op (so --archs 2 or 3 already
         spread), one architecture per cell per round: the first of that cell after a seeded shuffle
         of the pool (Python's random.Random(SEED); `space sample` prints its draw sorted by index).
         Note the test space has only 96 two-layer architectures out of 9,312: covering both
         depths equally over-represents them relative to uniform sampling, on purpose.
  random the N architectures of `flexnas space sample --n N --seed SEED` (a uniform draw).

Layout: OUT/selection.json (the architectures), OUT/archs/<NN>.json (model dicts), OUT/<budget>/<NN>/
{run.json (the commands), pretrain.log, finetune.log, pretrained/, finetuned/} with <budget> = cheap |
x<F>, OUT/proxy_fidelity.json and OUT/proxy_fidelity.txt (the report, also printed to stdout).
A larger or smaller --archs with the same seed selects a prefix of the same list, so it can reuse OUT.
Resuming: a run whose finetuned/metrics.json exists and whose recorded commands (run.json) equal the
current ones is skipped; a finished pretraining is reused; anything partial is deleted and redone; a
run whose commands changed (the campaign's budget changed) is redone with a warning.

Testing cheaply: --dry-run prints the selection and the commands; --steps-scale S multiplies every
step count (pretraining steps and step-valued args) and the fine-tuning training examples (of the
full split when it is used whole) by S, e.g. --archs 2 --steps-scale 0.1 for a smoke test.

Exit status: 0 ok, 1 some runs failed (the report covers the rest), 2 bad flag or missing file,
130 interrupted.
"""
import argparse
import concurrent.futures as cf
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_RHO = 0.7
PROG = "proxy_fidelity"


def log(msg):
    print(f"[{PROG}] {msg}", file=sys.stderr, flush=True)


class UsageError(Exception):
    """A bad flag, a missing file or an unusable campaign: exit status 2."""


# ---------------------------------------------------------------- campaign YAML


def _scalar(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text.lower() in ("true", "yes", "on"):
        return True
    if text.lower() in ("false", "no", "off"):
        return False
    if text in ("", "~", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _split_flow(body):
    """Items of a flow collection body ("a, 'b, c', [d]"), respecting quotes and brackets."""
    items, cur, depth, quote = [], "", 0, None
    for ch in body:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch in "[{":
            depth += 1
            cur += ch
        elif ch in "]}":
            depth -= 1
            cur += ch
        elif ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        items.append(cur)
    return items


def _value(text):
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return [_value(x) for x in _split_flow(text[1:-1])]
    if text.startswith("{") and text.endswith("}"):
        out = {}
        for item in _split_flow(text[1:-1]):
            k, _, v = item.partition(":")
            out[_scalar(k)] = _value(v)
        return out
    return _scalar(text)


def _strip_comment(line):
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def mini_yaml(text):
    """Fallback when python3-yaml is missing: block maps of scalars and flow collections, plus block
    lists of scalars ("- x") -- enough for a campaign file's top level and evaluator section."""
    root = {}
    stack = [(-1, root)]  # (indent, container)
    pending = None  # (indent, parent dict, key) of a "key:" line with an empty value
    for raw in text.splitlines():
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() == "---":
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if pending and indent > pending[0]:
            container = [] if body.startswith("- ") or body == "-" else {}
            pending[1][pending[2]] = container
            stack.append((pending[0], container))
        pending = None
        while len(stack) > 1 and indent <= stack[-1][0]:
            stack.pop()
        container = stack[-1][1]
        if body.startswith("-") and isinstance(container, list):
            container.append(_value(body[1:]))
            continue
        if not isinstance(container, dict):
            raise ValueError(f"unsupported YAML line: {raw!r}")
        key, sep, rest = body.partition(":")
        if not sep:
            raise ValueError(f"unsupported YAML line: {raw!r}")
        key = _scalar(key)
        if rest.strip():
            container[key] = _value(rest)
        else:
            container[key] = None
            pending = (indent, container, key)
    return root


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        import yaml  # Debian: python3-yaml
    except ImportError:
        return mini_yaml(text)
    return yaml.safe_load(text)


class Campaign:
    """What this bench needs of a campaign YAML, with paths resolved against the file's folder."""

    def __init__(self, path):
        if not os.path.isfile(path):
            raise UsageError(f"--campaign: '{path}': no such file")
        try:
            doc = load_yaml(path)
        except Exception as e:  # noqa: BLE001 -- any parse error is a usage error
            raise UsageError(f"--campaign: '{path}': cannot parse: {e}")
        if not isinstance(doc, dict):
            raise UsageError(f"--campaign: '{path}': expected a mapping at the top level")
        self.path = os.path.abspath(path)
        base = os.path.dirname(self.path)
        res = lambda p: os.path.normpath(os.path.join(base, str(p)))  # noqa: E731
        ev = doc.get("evaluator") or {}
        if ev.get("type", "builtin") != "builtin":
            raise UsageError(f"--campaign: '{path}': evaluator type '{ev.get('type')}' is not builtin "
                             "(this bench reruns flexnas's own pretrain + finetune)")
        ds = doc.get("design_space") or {}
        if isinstance(ds, str):
            ds = {"file": ds}
        self.design_space = res(ds["file"]) if ds.get("file") else None
        self.layers_per_stack = ds.get("layers_per_stack")
        self.heterogeneous_ff = bool(ds.get("heterogeneous_feed_forward", False))
        self.increasing = bool(ds.get("increasing", False))
        self.tokenizer = res(ev["tokenizer"]) if ev.get("tokenizer") else None
        corpus = ev.get("corpus") or []
        self.corpus = [res(c) for c in ([corpus] if isinstance(corpus, str) else corpus)]
        # Defaults as launch/campaign/campaign_config.h (BuiltinConfig).
        self.steps = int(ev.get("steps", 1000))
        self.epochs = int(ev.get("epochs", 3))
        tasks = ev.get("tasks")
        self.task = ",".join(str(t) for t in tasks) if tasks else str(ev.get("task", "spam"))
        self.data_dir = res(ev["data_dir"]) if ev.get("data_dir") else None
        self.precision = str(ev.get("precision", "auto"))
        self.device = str(ev.get("device", "auto"))
        self.pretrain_args = [str(a) for a in (ev.get("pretrain_args") or [])]
        self.finetune_args = [str(a) for a in (ev.get("finetune_args") or [])]
        self.executable = res(ev["executable"]) if ev.get("executable") else None

    def summary(self):
        return {"file": self.path, "design_space": self.design_space, "steps": self.steps,
                "epochs": self.epochs, "task": self.task, "tokenizer": self.tokenizer,
                "corpus": self.corpus, "data_dir": self.data_dir, "precision": self.precision,
                "device": self.device, "pretrain_args": self.pretrain_args,
                "finetune_args": self.finetune_args}


# ---------------------------------------------------------------- argument lists

PRETRAIN_STEP_FLAGS = ("--warmup-steps", "--eval-every", "--save-every", "--stop-after")


def get_flag(args, flag):
    """Value of the last `flag V` / `flag=V` in args, or None."""
    val = None
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            val = args[i + 1]
        elif a.startswith(flag + "="):
            val = a[len(flag) + 1:]
    return val


def set_flag(args, flag, value):
    """args with every `flag V` / `flag=V` removed, then `flag value` appended (value None: removed)."""
    out, skip = [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a == flag:
            skip = True
            continue
        if a.startswith(flag + "="):
            continue
        out.append(a)
    if value is not None:
        out += [flag, str(value)]
    return out


def map_flag(args, flag, fn):
    """args with the value of every `flag V` / `flag=V` replaced by fn(V) (order kept)."""
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a == flag and i + 1 < len(args):
            out += [a, str(fn(args[i + 1]))]
            i += 2
            continue
        if a.startswith(flag + "="):
            out.append(f"{flag}={fn(a[len(flag) + 1:])}")
        else:
            out.append(a)
        i += 1
    return out


def scale_steps(n, mult, minimum=1):
    return max(minimum, int(round(n * mult)))


class Budget:
    def __init__(self, name, pretrain_mult, finetune_mode, factor):
        self.name = name
        self.pretrain_mult = pretrain_mult  # factor x steps-scale
        self.finetune_mode = finetune_mode  # cheap | full | scaled | same
        self.factor = factor


def budget_args(c, b, steps_scale, train_sizes):
    """(pretrain steps, pretrain extra args, finetune extra args) of budget b."""
    steps = scale_steps(c.steps, b.pretrain_mult)
    pre = list(c.pretrain_args)
    for flag in PRETRAIN_STEP_FLAGS:
        def f(v, flag=flag):
            n = int(v)
            if flag == "--warmup-steps" and n < 0:
                return n  # -1: 10% of --steps, scales by itself
            return scale_steps(n, b.pretrain_mult, 0 if flag == "--warmup-steps" else 1)
        pre = map_flag(pre, flag, f)
    pre = set_flag(pre, "--threads", 1)

    fine = set_flag(list(c.finetune_args), "--threads", 1)
    cap = get_flag(fine, "--max-train-examples")
    cap = int(cap) if cap is not None else 0  # 0 = the whole split
    if b.finetune_mode == "full":
        cap = 0
    elif b.finetune_mode == "scaled" and cap > 0:
        cap = int(round(cap * b.factor))
    if cap == 0 and steps_scale != 1.0:
        if train_sizes:
            cap = max(1, math.ceil(max(train_sizes.values()) * steps_scale))
        else:
            log("warning: --steps-scale: the training split's size is unknown; the whole split is used")
    elif cap > 0:
        cap = max(1, math.ceil(cap * steps_scale))
    if train_sizes and cap >= max(train_sizes.values()):
        cap = 0  # the whole split either way; keep the command as the campaign would write it
    fine = set_flag(fine, "--max-train-examples", cap if cap > 0 else None)
    return steps, pre, fine


def build_commands(a, c, b, run_dir, arch_path, train_sizes):
    steps, pre_args, fine_args = budget_args(c, b, a.steps_scale, train_sizes)
    pretrained = os.path.join(run_dir, "pretrained")
    finetuned = os.path.join(run_dir, "finetuned")
    pre = [a.bin, "pretrain", "--arch", arch_path, "--tokenizer", a.tokenizer, "--corpus", *a.corpus,
           "--steps", str(steps), "--seed", str(a.seed), "--out", pretrained]
    if c.precision != "auto":
        pre += ["--precision", c.precision]
    if c.device != "auto":
        pre += ["--device", c.device]
    pre += pre_args
    fine = [a.bin, "finetune", "--checkpoint", pretrained, "--task", c.task, "--epochs", str(c.epochs),
            "--seed", str(a.seed), "--out", finetuned, "--data-dir", a.data]
    if c.precision != "auto":
        fine += ["--precision", c.precision]
    if c.device != "auto":
        fine += ["--device", c.device]
    fine += fine_args
    return {"pretrain": pre, "finetune": fine, "pretrain_steps": steps}


def work_units(cmds, train_sizes, dev_sizes):
    """Rough cost of each phase in tokens processed (for the ETA only)."""
    pre, fine = cmds["pretrain"], cmds["finetune"]
    p = int(cmds["pretrain_steps"]) * int(get_flag(pre, "--batch-size") or 32) * int(get_flag(pre, "--seq-len") or 128)
    epochs = int(get_flag(fine, "--epochs") or 3)
    task = get_flag(fine, "--task") or ""
    max_len = int(get_flag(fine, "--max-len") or 0) or (256 if task == "spam" else 128)  # 0: the task's default
    n_train = sum(train_sizes.values()) if train_sizes else 5000
    cap = get_flag(fine, "--max-train-examples")
    if cap and int(cap) > 0:
        n_train = min(n_train, int(cap) * max(1, len(train_sizes)))
    n_dev = sum(dev_sizes.values()) if dev_sizes else 600
    f = epochs * max_len * (n_train + n_dev / 3.0)  # dev: forward only, each epoch
    return {"pretrain": float(p), "finetune": float(f)}


# ---------------------------------------------------------------- flexnas calls


def flexnas_out(a, args, what):
    r = subprocess.run([a.bin, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise UsageError(f"{what} failed (exit {r.returncode}): {shlex.join([a.bin, *args])}\n{r.stderr.strip()}")
    return r.stdout


def task_sizes(a, c):
    """{task: n_train}, {task: n_dev} of the campaign's tasks (empty when unknown, e.g. a suite)."""
    train, dev = {}, {}
    with tempfile.TemporaryDirectory(prefix="proxy-fidelity-") as tmp:
        for t in c.task.split(","):
            r = subprocess.run([a.bin, "task", "export", "--task", t, "--data-dir", a.data, "--out", tmp],
                               capture_output=True, text=True)
            m = re.search(r"train (\d+) dev (\d+)", r.stdout)
            if r.returncode != 0 or not m:
                return {}, {}
            train[t], dev[t] = int(m.group(1)), int(m.group(2))
    return train, dev


def sample_archs(a, c, n, seed):
    args = ["space", "sample", "-d", a.design_space, "--n", str(n), "--seed", str(seed)]
    if c.layers_per_stack:
        args += ["--layers-per-stack", str(c.layers_per_stack)]
    if c.heterogeneous_ff:
        args.append("--heterogeneous-ff")
    if c.increasing:
        args.append("--increasing")
    out = flexnas_out(a, args, "flexnas space sample")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def cell_of(md):
    return (int(md["l"]), int(md["h"][0]), str(md["o"][0]))


def cell_name(cell):
    return f"L{cell[0]}/H{cell[1]}/{cell[2]}"


def space_count(a, c):
    args = ["space", "count", "-d", a.design_space]
    if c.layers_per_stack:
        args += ["--layers-per-stack", str(c.layers_per_stack)]
    if c.heterogeneous_ff:
        args.append("--heterogeneous-ff")
    if c.increasing:
        args.append("--increasing")
    try:
        out = flexnas_out(a, args, "flexnas space count")
    except UsageError:
        return None
    nums = re.findall(r"total\D*(\d+)", out)
    return int(nums[-1]) if nums else None


def select_archs(a, c):
    """[(sample index, model dict, cell)] and a description of how they were chosen."""
    if a.selection == "random":
        archs = sample_archs(a, c, a.archs, a.seed)
        if len(archs) < a.archs:
            raise UsageError(f"--archs {a.archs}: the design space holds only {len(archs)} architectures")
        return [(x["index"], x["model_dict"], cell_of(x["model_dict"])) for x in archs], {
            "selection": "random", "command": f"flexnas space sample -d {a.design_space} --n {a.archs} --seed {a.seed}"}
    # Default pool: the whole space when it is small (the test space: 9,312, of which only 96 have 2
    # layers, so a smaller random pool could miss cells), else 20,000 random architectures.
    total = space_count(a, c)
    pool_n = a.pool or (min(total, 20000) if total else 20000)
    if total:
        pool_n = min(pool_n, total)
    pool = sample_archs(a, c, pool_n, a.seed)
    # `space sample` prints its draw sorted by space index (the whole space: in enumeration order), so
    # the order inside a cell comes from a seeded shuffle here.
    random.Random(a.seed).shuffle(pool)
    cells = {}
    for x in pool:
        cells.setdefault(cell_of(x["model_dict"]), []).append(x)
    depths = sorted({k[0] for k in cells})
    widths = sorted({k[1] for k in cells})
    ops = []
    for x in pool:  # ops in the design space's order of appearance is unknown: sa, l, c first, then others
        o = str(x["model_dict"]["o"][0])
        if o not in ops:
            ops.append(o)
    ops.sort(key=lambda o: (["sa", "l", "c"].index(o) if o in ("sa", "l", "c") else 3, o))
    # Visit order: i -> (op i mod |ops|, depth i mod |depths|, width ((i+1) div 2) mod |widths|).
    # With 3 ops, 2 depths, 2 widths this is a bijection of 0..11 onto the 12 cells (CRT), and
    # consecutive cells differ in every attribute.
    order, seen = [], set()
    total_cells = len(depths) * len(widths) * len(ops)
    i = 0
    while len(order) < total_cells and i < 10 * total_cells:
        key = (depths[i % len(depths)], widths[((i + 1) // 2) % len(widths)], ops[i % len(ops)])
        if key not in seen:
            seen.add(key)
            order.append(key)
        i += 1
    for d in depths:  # anything the formula missed (other space shapes)
        for w in widths:
            for o in ops:
                if (d, w, o) not in seen:
                    seen.add((d, w, o))
                    order.append((d, w, o))
    chosen, used, rnd = [], {}, 0
    empty = [cell_name(k) for k in order if k not in cells]
    while len(chosen) < a.archs:
        progress = False
        for key in order:
            if len(chosen) >= a.archs:
                break
            members = cells.get(key, [])
            k = used.get(key, 0)
            if k < len(members):
                x = members[k]
                used[key] = k + 1
                chosen.append((x["index"], x["model_dict"], key))
                progress = True
        rnd += 1
        if not progress:
            raise UsageError(f"--archs {a.archs}: the pool of {len(pool)} sampled architectures holds only {len(chosen)}")
    if empty:
        log(f"warning: no architecture of the pool falls in cells {', '.join(empty)}")
    return chosen, {"selection": "stratified", "pool": len(pool), "cells": [cell_name(k) for k in order],
                    "empty_cells": empty,
                    "command": f"flexnas space sample -d {a.design_space} --n {len(pool)} --seed {a.seed}",
                    "rule": "cells (encoder layers, first-layer hidden size, first-layer op); one per cell per "
                            "round, first in each cell after random.Random(seed).shuffle(pool)"}


# ---------------------------------------------------------------- running

_active = set()
_active_lock = threading.Lock()
_stopping = threading.Event()


def _terminate_children():
    with _active_lock:
        procs = list(_active)
    for p in procs:
        try:
            p.terminate()
        except OSError:
            pass


def wait_for_binary(a):
    """After a failure with the binary gone (being rebuilt): wait until it is back and stable."""
    deadline = time.time() + a.bin_wait
    logged = False
    while time.time() < deadline and not _stopping.is_set():
        if os.path.isfile(a.bin) and os.access(a.bin, os.X_OK):
            m1 = os.path.getmtime(a.bin)
            time.sleep(20)
            if os.path.isfile(a.bin) and os.path.getmtime(a.bin) == m1:
                return True
            continue
        if not logged:
            log(f"{a.bin} is missing (being rebuilt?): waiting up to {a.bin_wait:.0f} s")
            logged = True
        time.sleep(10)
    return os.path.isfile(a.bin)


def run_phase(a, cmd, log_path, key):
    """Runs cmd with stdout+stderr to log_path; retries once when the binary vanished meanwhile."""
    for attempt in range(2):
        if _stopping.is_set():
            return 130
        with open(log_path, "w") as logf:
            logf.write("$ " + shlex.join(cmd) + "\n")
            logf.flush()
            try:
                p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            except OSError as e:
                logf.write(f"cannot start: {e}\n")
                p = None
            rc = 127
            if p is not None:
                with _active_lock:
                    _active.add(p)
                try:
                    rc = p.wait()
                finally:
                    with _active_lock:
                        _active.discard(p)
        if rc == 0 or _stopping.is_set() or attempt == 1:
            return rc
        if os.path.isfile(a.bin) and rc != 127:
            return rc
        if not wait_for_binary(a):
            return rc
        out_dir = get_flag(cmd, "--out")
        if out_dir and os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        log(f"{key}: the binary is back: retrying {cmd[1]}")
    return rc


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def log_tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip() for l in f if l.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def pretrain_done(run_dir, steps):
    m = read_json(os.path.join(run_dir, "pretrained", "metrics.json"))
    return bool(m) and m.get("kind") == "pretrain" and int(m.get("step", -1)) == int(steps)


def finetune_done(run_dir):
    m = read_json(os.path.join(run_dir, "finetuned", "metrics.json"))
    return bool(m) and isinstance(m.get("score"), (int, float))


class Progress:
    """Phase-level progress with a throughput-calibrated ETA (seconds per work unit per phase kind)."""

    def __init__(self, total_runs, jobs):
        self.lock = threading.Lock()
        self.total = total_runs
        self.jobs = jobs
        self.done = 0
        self.failed = 0
        self.skipped = 0
        self.start = time.time()
        self.sec_per_unit = {}  # kind -> [seconds, units]
        self.remaining = {}  # (run key, kind) -> units
        self.running = {}  # (run key, kind) -> start time

    def add(self, key, kind, units):
        self.remaining[(key, kind)] = units

    def begin(self, key, kind):
        with self.lock:
            self.running[(key, kind)] = time.time()

    def end(self, key, kind, ok=True):
        with self.lock:
            t0 = self.running.pop((key, kind), None)
            units = self.remaining.pop((key, kind), 0.0)
            if ok and t0 is not None and units > 0:
                s = self.sec_per_unit.setdefault(kind, [0.0, 0.0])
                s[0] += time.time() - t0
                s[1] += units

    def drop(self, key):
        with self.lock:
            for k in [k for k in self.remaining if k[0] == key]:
                del self.remaining[k]

    GUESS = 1.0 / 3000  # seconds per token before any phase finished (a small model on one core)

    def _rate(self, kind):
        s = self.sec_per_unit.get(kind)
        if s and s[1] > 0:
            return s[0] / s[1]
        others = [v[0] / v[1] for v in self.sec_per_unit.values() if v[1] > 0]
        return sum(others) / len(others) if others else self.GUESS

    def eta(self):
        total = 0.0
        now = time.time()
        for (key, kind), units in self.remaining.items():
            r = self._rate(kind)
            if r is None:
                return None
            est = units * r
            if (key, kind) in self.running:
                est = max(0.0, est - (now - self.running[(key, kind)]))
            total += est
        return total / max(1, min(self.jobs, max(1, len({k for k, _ in self.remaining}))))

    def line(self, what):
        with self.lock:
            elapsed = time.time() - self.start
            fresh = self.done - self.skipped - self.failed
            rate = f"{fresh / elapsed * 3600:.1f} runs/h" if fresh > 0 and elapsed > 0 else "- runs/h"
            eta = self.eta()
            eta_s = fmt_dur(eta) if eta is not None else "?"
            if not self.sec_per_unit:
                eta_s = "~" + eta_s + " (guess)"
            log(f"{self.done}/{self.total} runs done ({self.skipped} resumed, {self.failed} failed), "
                f"{rate}, elapsed {fmt_dur(elapsed)}, ETA {eta_s} | {what}")


def fmt_dur(s):
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def execute(a, runs, progress):
    """Runs every (budget, index) that is not done; returns {key: error or None}."""
    errors = {}

    def one(r):
        key, run_dir, cmds = r["key"], r["dir"], r["commands"]
        if _stopping.is_set():
            return key, "interrupted"
        if not pretrain_done(run_dir, cmds["pretrain_steps"]):
            shutil.rmtree(os.path.join(run_dir, "pretrained"), ignore_errors=True)
            shutil.rmtree(os.path.join(run_dir, "finetuned"), ignore_errors=True)
            progress.begin(key, "pretrain")
            progress.line(f"{key}: pretraining {cmds['pretrain_steps']} steps")
            t0 = time.time()
            rc = run_phase(a, cmds["pretrain"], os.path.join(run_dir, "pretrain.log"), key)
            if rc != 0 or not pretrain_done(run_dir, cmds["pretrain_steps"]):
                progress.end(key, "pretrain", ok=False)
                progress.drop(key)
                lp = os.path.join(run_dir, "pretrain.log")
                return key, f"pretrain exit {rc} (see {lp}): {log_tail(lp)}"
            progress.end(key, "pretrain")
            progress.line(f"{key}: pretrained in {fmt_dur(time.time() - t0)}")
        else:
            progress.end(key, "pretrain", ok=False)
        shutil.rmtree(os.path.join(run_dir, "finetuned"), ignore_errors=True)
        progress.begin(key, "finetune")
        progress.line(f"{key}: finetuning")
        t0 = time.time()
        rc = run_phase(a, cmds["finetune"], os.path.join(run_dir, "finetune.log"), key)
        if rc != 0 or not finetune_done(run_dir):
            progress.end(key, "finetune", ok=False)
            lp = os.path.join(run_dir, "finetune.log")
            return key, f"finetune exit {rc} (see {lp}): {log_tail(lp)}"
        progress.end(key, "finetune")
        m = read_json(os.path.join(run_dir, "finetuned", "metrics.json"))
        col, _ = collapsed_of(m)
        return key, (None, f"finetuned in {fmt_dur(time.time() - t0)}, score {m['score']:.4f}"
                     + (" COLLAPSED" if col else ""))

    pool = cf.ThreadPoolExecutor(max_workers=a.jobs)
    futures = [pool.submit(one, r) for r in runs]
    try:
        for fut in cf.as_completed(futures):
            key, res = fut.result()
            with progress.lock:
                progress.done += 1
                if not isinstance(res, tuple):
                    progress.failed += 1
            if isinstance(res, tuple):
                errors[key] = None
                progress.line(f"{key}: {res[1]}")
            else:
                errors[key] = res
                progress.line(f"{key}: FAILED: {res}")
    except KeyboardInterrupt:
        _stopping.set()
        _terminate_children()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return errors


# ---------------------------------------------------------------- metrics and statistics


def _infer_collapsed(task_metrics):
    """From a single task's dev metrics (binary accuracy + f1 of the positive class): f1 == 0 means
    the model never predicted (correctly) the positive class; f1 == 2a/(1+a) with accuracy a is what
    predicting the positive class for every example gives. None when it cannot be told."""
    dev = task_metrics.get("dev") if isinstance(task_metrics, dict) else None
    if not isinstance(dev, dict) or "f1" not in dev or "accuracy" not in dev:
        return None
    f1, acc = float(dev["f1"]), float(dev["accuracy"])
    return f1 == 0.0 or abs(f1 - 2 * acc / (1 + acc)) < 1e-9


def collapsed_of(m):
    """(collapsed, how): the metrics' own "collapsed" field when present, else inferred from dev
    metrics, else False."""
    if not m:
        return False, "missing"
    inferred = None
    if isinstance(m.get("tasks"), dict):  # a suite
        flags = [_infer_collapsed(t) for t in m["tasks"].values()]
        if any(f is True for f in flags):
            inferred = True
        elif flags and all(f is False for f in flags):
            inferred = False
    else:
        inferred = _infer_collapsed(m)
    if isinstance(m.get("collapsed"), bool):
        how = "reported"
        if inferred is not None and inferred != m["collapsed"]:
            how = f"reported (dev metrics suggest {inferred})"
        return m["collapsed"], how
    if inferred is not None:
        return inferred, "inferred from dev f1/accuracy"
    return False, "unknown (no field; assumed false)"


def ranks(xs):
    """Average ranks (1-based) with ties sharing the mean rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return r


def pearson(x, y):
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx <= 0 or syy <= 0:
        return float("nan")
    return sxy / math.sqrt(sxx * syy)


def spearman(x, y):
    return pearson(ranks(x), ranks(y))


def kendall_tau_b(x, y):
    n = len(x)
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / denom if denom > 0 else float("nan")


def percentile(sorted_xs, q):
    if not sorted_xs:
        return float("nan")
    pos = (len(sorted_xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def correlation_stats(x, y, seed, resamples):
    n = len(x)
    out = {"n": n, "spearman": None, "spearman_ci95": None, "kendall_tau_b": None,
           "permutation_p_one_sided": None, "bootstrap": None}
    if n < 3:
        out["note"] = f"{n} paired scores: too few for a correlation"
        return out
    rho = spearman(x, y)
    out["spearman"] = None if math.isnan(rho) else rho
    tau = kendall_tau_b(x, y)
    out["kendall_tau_b"] = None if math.isnan(tau) else tau
    if math.isnan(rho):
        out["note"] = "one budget's scores are all equal: rank correlation undefined"
        return out
    rng = random.Random(seed)
    boots, degenerate = [], 0
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        r = spearman([x[i] for i in idx], [y[i] for i in idx])
        if math.isnan(r):
            degenerate += 1
        else:
            boots.append(r)
    boots.sort()
    out["spearman_ci95"] = [percentile(boots, 0.025), percentile(boots, 0.975)] if boots else None
    out["bootstrap"] = {"resamples": resamples, "seed": seed, "degenerate_skipped": degenerate,
                        "method": "percentile; resample architectures with replacement; average ranks for ties",
                        "fraction_ge_target": (sum(1 for r in boots if r >= TARGET_RHO) / len(boots)) if boots else None}
    rng = random.Random(seed + 1)
    perms, ge = 10000, 0
    rx = ranks(x)
    ry = ranks(y)
    for _ in range(perms):
        yy = ry[:]
        rng.shuffle(yy)
        if pearson(rx, yy) >= rho - 1e-12:
            ge += 1
    out["permutation_p_one_sided"] = (ge + 1) / (perms + 1)
    if n < 8:
        out["note"] = f"only {n} architectures: the interval is wide and the test weak"
    return out


# ---------------------------------------------------------------- report


def params_of(a, arch_path, run_dirs):
    """Parameters of the fine-tuned classifier (cls head, 2 labels) via `flexnas model info`."""
    vocab = None
    for d in run_dirs:
        cfg = read_json(os.path.join(d, "pretrained", "config.json"))
        if cfg and cfg.get("model", {}).get("vocab_size"):
            vocab = int(cfg["model"]["vocab_size"])
            break
    if vocab is None or not os.path.isfile(a.bin):
        return None
    r = subprocess.run([a.bin, "model", "info", "--arch", arch_path, "--vocab-size", str(vocab), "--head", "cls",
                        "--json"], capture_output=True, text=True)
    try:
        return int(json.loads(r.stdout)["total_params"]) if r.returncode == 0 else None
    except (ValueError, KeyError):
        return None


def fmt_params(p):
    return "-" if p is None else (f"{p / 1e6:.2f}M" if p >= 1e6 else f"{p / 1e3:.0f}k")


def fmt_score(s):
    return "-" if s is None else f"{s:.4f}"


def report(a, c, budgets, archs, sel_info, runs_by_key, errors, out_dir):
    cheap, big = budgets[0].name, budgets[1].name
    rows = []
    for i, (sample_index, md, cell) in enumerate(archs):
        tag = f"{i:02d}"
        row = {"index": i, "sample_index": sample_index, "cell": cell_name(cell), "model_dict": md,
               "arch_file": os.path.join(out_dir, "archs", f"{tag}.json")}
        dirs = []
        for b in budgets:
            r = runs_by_key[f"{b.name}/{tag}"]
            dirs.append(r["dir"])
            stale = r.get("stale", False)  # ran with other commands (--report-only): not this budget
            m = read_json(os.path.join(r["dir"], "finetuned", "metrics.json")) \
                if finetune_done(r["dir"]) and not stale else None
            entry = {"dir": r["dir"], "score": None, "collapsed": None, "collapsed_source": None,
                     "error": errors.get(r["key"]), "stale": stale}
            if m is not None:
                col, how = collapsed_of(m)
                entry.update({"score": float(m["score"]), "collapsed": col, "collapsed_source": how,
                              "best_epoch": m.get("best_epoch"), "dev": m.get("dev"), "test": m.get("test")})
                pm = read_json(os.path.join(r["dir"], "pretrained", "metrics.json")) or {}
                entry["pretrain"] = {k: pm.get(k) for k in ("step", "train_loss", "eval_loss", "tokens_per_second")}
            row[b.name] = entry
        row["params"] = params_of(a, row["arch_file"], dirs)
        rows.append(row)

    pairs = [(r[cheap]["score"], r[big]["score"]) for r in rows
             if r[cheap]["score"] is not None and r[big]["score"] is not None]
    stats_all = correlation_stats([p[0] for p in pairs], [p[1] for p in pairs], a.seed, a.bootstrap)
    pairs_nc = [(r[cheap]["score"], r[big]["score"]) for r in rows
                if r[cheap]["score"] is not None and r[big]["score"] is not None
                and not r[cheap]["collapsed"] and not r[big]["collapsed"]]
    stats_nc = correlation_stats([p[0] for p in pairs_nc], [p[1] for p in pairs_nc], a.seed, a.bootstrap)
    collapsed = {}
    for b in budgets:
        done = [r[b.name] for r in rows if r[b.name]["score"] is not None]
        k = sum(1 for e in done if e["collapsed"])
        collapsed[b.name] = {"evaluations": len(done), "collapsed": k,
                             "fraction": (k / len(done)) if done else None}
    all_done = [r[b.name] for r in rows for b in budgets if r[b.name]["score"] is not None]
    collapsed["all"] = {"evaluations": len(all_done), "collapsed": sum(1 for e in all_done if e["collapsed"]),
                        "fraction": (sum(1 for e in all_done if e["collapsed"]) / len(all_done)) if all_done else None}
    rho = stats_all["spearman"]
    verdict = None if rho is None else ("PASS" if rho >= TARGET_RHO else "FAIL")

    # ---- text
    rank_c = dict()
    rank_b = dict()
    if pairs:
        idx = [r["index"] for r in rows if r[cheap]["score"] is not None and r[big]["score"] is not None]
        for i, rc, rb in zip(idx, ranks([-p[0] for p in pairs]), ranks([-p[1] for p in pairs])):
            rank_c[i], rank_b[i] = rc, rb
    lines = []
    lines.append(f"Proxy fidelity: {os.path.relpath(c.path, REPO)} cheap budget vs {big} "
                 f"(pretraining x{a.factor:g}, fine-tuning: {a.finetune_budget}), seed {a.seed}, steps-scale {a.steps_scale:g}")
    lines.append(f"task {c.task}; score = {c.task} dev score; rank 1 = best; C = collapsed (one class predicted for all of dev)")
    hdr = f"{'arch':>4}  {'cell':<12} {'params':>8}  {cheap:>8} {'rank':>5}  {big:>8} {'rank':>5}  collapsed"
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for r in rows:
        i = r["index"]
        flags = []
        for b in budgets:
            e = r[b.name]
            if e["score"] is None:
                flags.append(f"{b.name}:" + ("failed" if e["error"] else ("stale" if e["stale"] else "missing")))
            elif e["collapsed"]:
                flags.append(f"{b.name}:C")
        rc = f"{rank_c[i]:g}" if i in rank_c else "-"
        rb = f"{rank_b[i]:g}" if i in rank_b else "-"
        lines.append(f"{i:>4}  {r['cell']:<12} {fmt_params(r['params']):>8}  {fmt_score(r[cheap]['score']):>8} {rc:>5}  "
                     f"{fmt_score(r[big]['score']):>8} {rb:>5}  {' '.join(flags)}")
    lines.append("")

    def stat_line(label, s):
        if s["spearman"] is None:
            return f"{label}: n={s['n']}: {s.get('note', 'undefined')}"
        ci = s["spearman_ci95"]
        ci_s = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "[-]"
        tau = "nan" if s["kendall_tau_b"] is None else f"{s['kendall_tau_b']:.3f}"
        p = s["permutation_p_one_sided"]
        extra = f"; {s['note']}" if s.get("note") else ""
        return (f"{label}: n={s['n']}  Spearman rho {s['spearman']:.3f}  95% bootstrap CI {ci_s} "
                f"({a.bootstrap} resamples)  Kendall tau-b {tau}  permutation p {p:.4f}{extra}")

    lines.append(stat_line("all architectures", stats_all))
    lines.append(stat_line("both budgets non-collapsed", stats_nc))
    for b in budgets:
        cc = collapsed[b.name]
        fr = "-" if cc["fraction"] is None else f"{cc['fraction']:.2f}"
        lines.append(f"collapsed {b.name}: {cc['collapsed']}/{cc['evaluations']} = {fr}")
    if verdict:
        ci = stats_all["spearman_ci95"]
        sure = ""
        if ci:
            sure = (" (whole 95% CI above the target)" if ci[0] >= TARGET_RHO else
                    " (95% CI below the target)" if ci[1] < TARGET_RHO else " (95% CI straddles the target)")
        lines.append(f"target Spearman >= {TARGET_RHO}: {verdict}{sure}")
    missing = [r["key"] for r in runs_by_key.values()
               if not finetune_done(r["dir"]) or r.get("stale")]
    if missing:
        lines.append(f"incomplete runs ({len(missing)}): {' '.join(sorted(missing))}")
    text = "\n".join(lines) + "\n"

    result = {
        "kind": "proxy_fidelity",
        "target": {"spearman_at_least": TARGET_RHO, "verdict": verdict},
        "campaign": c.summary(),
        "settings": {"archs": a.archs, "seed": a.seed, "factor": a.factor, "steps_scale": a.steps_scale,
                     "finetune_budget": a.finetune_budget, "jobs": a.jobs, "bootstrap": a.bootstrap,
                     "tokenizer": a.tokenizer, "data": a.data, "corpus": a.corpus, "binary": a.bin,
                     "binary_mtime": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(a.bin)))
                                      if os.path.isfile(a.bin) else None)},
        "selection": sel_info,
        "budgets": {b.name: {"pretrain": runs_by_key[f"{b.name}/00"]["commands"]["pretrain"],
                             "finetune": runs_by_key[f"{b.name}/00"]["commands"]["finetune"],
                             "pretrain_steps": runs_by_key[f"{b.name}/00"]["commands"]["pretrain_steps"]}
                    for b in budgets},
        "architectures": rows,
        "spearman": stats_all["spearman"],
        "spearman_ci95": stats_all["spearman_ci95"],
        "kendall_tau_b": stats_all["kendall_tau_b"],
        "stats": stats_all,
        "stats_non_collapsed": stats_nc,
        "collapsed": collapsed,
        "incomplete_runs": sorted(missing),
        "report": text,
    }
    return text, result


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------- main


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench/proxy_fidelity.sh",
        description="Spearman rank correlation between the campaign's cheap evaluation and a FACTOR-times "
                    "budget over architectures spread over the design space (target rho >= 0.7).",
        epilog="Budgets, selection and resume rules: see the header of bench/proxy_fidelity.py.")
    ap.add_argument("--campaign", default=os.path.join(REPO, "examples/campaigns/demo_brown_spam.yaml"),
                    help="campaign YAML whose evaluator section is the cheap budget (default %(default)s)")
    ap.add_argument("--archs", type=int, default=12, help="architectures (default 12)")
    ap.add_argument("--seed", type=int, default=1, help="selection, pretraining and fine-tuning seed (default 1)")
    ap.add_argument("--factor", type=float, default=8, help="budget multiple of the expensive evaluation (default 8)")
    ap.add_argument("--finetune-budget", choices=("full", "scaled", "same"), default="full",
                    help="fine-tuning at the big budget: full = whole training split (default), scaled = "
                         "--max-train-examples x factor, same = as cheap")
    ap.add_argument("--jobs", type=int, default=2, help="processes at once, each with --threads 1 (default 2)")
    ap.add_argument("--out", default="runs/proxy-fidelity", help="output folder (default runs/proxy-fidelity)")
    ap.add_argument("--data", default=None, help="task data directory (default: the campaign's data_dir)")
    ap.add_argument("--tokenizer", default=None, help="SentencePiece model (default: the campaign's tokenizer)")
    ap.add_argument("--corpus", nargs="+", default=None, help="pretraining text files (default: the campaign's corpus)")
    ap.add_argument("--design-space", default=None, help="design-space YAML (default: the campaign's)")
    ap.add_argument("--selection", choices=("stratified", "random"), default="stratified")
    ap.add_argument("--pool", type=int, default=0,
                    help="stratified: architectures sampled to stratify (default: the whole space, at most 20000)")
    ap.add_argument("--steps-scale", type=float, default=1.0,
                    help="multiply every step count and fine-tuning example count (smoke tests; default 1.0)")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ap.add_argument("--bin", default=None, help="flexnas binary (default: build/bin/flexnas of this repository)")
    ap.add_argument("--bin-wait", type=float, default=600,
                    help="when a run fails because the binary is gone (rebuilt), wait this long for it (default 600 s)")
    ap.add_argument("--dry-run", action="store_true", help="print the selection and the commands, run nothing")
    ap.add_argument("--report-only", action="store_true", help="run nothing; report the finished runs in --out")
    a = ap.parse_args(argv)
    if a.archs < 1:
        ap.error("--archs: expected a positive integer")
    if a.jobs < 1:
        ap.error("--jobs: expected a positive integer")
    if not (a.factor > 1):
        ap.error("--factor: expected a number > 1")
    if not (a.steps_scale > 0) or math.isinf(a.steps_scale):
        ap.error("--steps-scale: expected a positive number")
    if a.bootstrap < 100:
        ap.error("--bootstrap: expected at least 100")
    if a.pool < 0:
        ap.error("--pool: expected a non-negative integer")
    return a


def main(argv):
    a = parse_args(argv)
    c = Campaign(a.campaign)
    # Resolve and check every input.
    a.bin = os.path.abspath(a.bin or c.executable or os.path.join(REPO, "build", "bin", "flexnas"))
    if not (os.path.isfile(a.bin) and os.access(a.bin, os.X_OK)):
        raise UsageError(f"--bin: '{a.bin}': no such executable (being rebuilt? build it, or retry in a few minutes)")
    a.tokenizer = os.path.abspath(a.tokenizer or c.tokenizer or "")
    if not (a.tokenizer and os.path.isfile(a.tokenizer)):
        raise UsageError(f"--tokenizer: '{a.tokenizer}': no such file (train one: flexnas tokenizer train "
                         "--corpus data/brown/text.txt --vocab-size 4000 --out runs/demo/spm.model)")
    default_data = c.data_dir or os.path.join(REPO, "data")
    a.data = os.path.abspath(a.data or default_data)
    if not os.path.isdir(a.data):
        raise UsageError(f"--data: '{a.data}': no such directory (scripts/fetch-data.sh)")
    if a.corpus is None:
        corpus = []
        for p in c.corpus:
            # The campaign's corpus under its data_dir moves with --data.
            if c.data_dir and os.path.abspath(a.data) != os.path.abspath(c.data_dir):
                rel = os.path.relpath(p, c.data_dir)
                if not rel.startswith(".."):
                    p = os.path.join(a.data, rel)
            corpus.append(p)
        a.corpus = corpus
    a.corpus = [os.path.abspath(p) for p in a.corpus]
    if not a.corpus:
        raise UsageError("--corpus: the campaign names no corpus; pass --corpus FILE")
    for p in a.corpus:
        if not os.path.isfile(p):
            raise UsageError(f"--corpus: '{p}': no such file")
    a.design_space = os.path.abspath(a.design_space or c.design_space or "")
    if not (a.design_space and os.path.isfile(a.design_space)):
        raise UsageError(f"--design-space: '{a.design_space}': no such file")
    out_dir = os.path.abspath(a.out)
    if a.factor == int(a.factor):
        a.factor = int(a.factor)

    budgets = [Budget("cheap", a.steps_scale, "cheap", 1),
               Budget(f"x{a.factor:g}", a.factor * a.steps_scale, a.finetune_budget, a.factor)]
    train_sizes, dev_sizes = task_sizes(a, c)
    archs, sel_info = select_archs(a, c)
    sel_record = {"design_space": a.design_space, "seed": a.seed, "archs": a.archs, **sel_info,
                  "architectures": [{"index": i, "sample_index": s, "cell": cell_name(k), "model_dict": md}
                                    for i, (s, md, k) in enumerate(archs)]}

    runs_by_key = {}
    for b in budgets:
        for i, (_, md, _) in enumerate(archs):
            tag = f"{i:02d}"
            run_dir = os.path.join(out_dir, b.name, tag)
            arch_path = os.path.join(out_dir, "archs", f"{tag}.json")
            r = {"key": f"{b.name}/{tag}", "dir": run_dir, "budget": b.name, "index": i,
                 "commands": build_commands(a, c, b, run_dir, arch_path, train_sizes)}
            runs_by_key[r["key"]] = r

    if a.dry_run:
        print(f"# campaign {c.path}: steps {c.steps}, epochs {c.epochs}, task {c.task}")
        print(f"# selection: {sel_info['selection']} ({sel_info['command']})")
        for i, (s, md, k) in enumerate(archs):
            print(f"# arch {i:02d} sample {s} {cell_name(k)} {json.dumps(md, separators=(',', ':'))}")
        print(f"# task sizes: train {train_sizes or '?'} dev {dev_sizes or '?'}")
        for b in budgets:
            for i in range(len(archs)):
                r = runs_by_key[f"{b.name}/{i:02d}"]
                done = " (done: would be skipped)" if finetune_done(r["dir"]) else ""
                print(f"# {r['key']}{done}")
                print(shlex.join(r["commands"]["pretrain"]))
                print(shlex.join(r["commands"]["finetune"]))
        return 0

    os.makedirs(os.path.join(out_dir, "archs"), exist_ok=True)
    sel_path = os.path.join(out_dir, "selection.json")
    old = read_json(sel_path)
    old_mds = [x["model_dict"] for x in (old or {}).get("architectures", [])]
    new_mds = [x["model_dict"] for x in sel_record["architectures"]]
    k = min(len(old_mds), len(new_mds))
    if old is not None and old_mds[:k] != new_mds[:k]:
        # A larger or smaller --archs with the same seed selects a prefix of the other: that is fine.
        raise UsageError(f"--out: '{out_dir}' holds another selection of architectures (other --seed, "
                         "--selection or design space): choose another --out or delete it")
    if (old is None or len(new_mds) > len(old_mds)) and not a.report_only:
        write_atomic(sel_path, json.dumps(sel_record, indent=2) + "\n")
    for i, (_, md, _) in enumerate(archs):
        p = os.path.join(out_dir, "archs", f"{i:02d}.json")
        if not os.path.isfile(p):
            write_atomic(p, json.dumps(md) + "\n")

    # Resume: what is done with the same commands is skipped.
    pending = []
    for key, r in runs_by_key.items():
        rec = read_json(os.path.join(r["dir"], "run.json"))
        same = rec is not None and rec.get("commands") == r["commands"]
        if finetune_done(r["dir"]) and same:
            continue
        if rec is not None and not same:
            r["stale"] = True
        pending.append(r)
    errors = {}
    done_before = len(runs_by_key) - len(pending)
    if a.report_only:
        pass
    elif pending:
        for r in pending:
            if r.get("stale"):
                log(f"warning: {r['key']}: the commands changed since it ran (campaign budget or flags): redoing it")
                shutil.rmtree(r["dir"], ignore_errors=True)
            os.makedirs(r["dir"], exist_ok=True)
            write_atomic(os.path.join(r["dir"], "run.json"),
                         json.dumps({"key": r["key"], "commands": r["commands"]}, indent=2) + "\n")
            r["stale"] = False
        # Longest first within each architecture (big budget, then cheap): a short tail with --jobs 2.
        pending.sort(key=lambda r: (r["index"], 0 if r["budget"] != "cheap" else 1))
        progress = Progress(len(runs_by_key), a.jobs)
        progress.done = progress.skipped = done_before
        for r in pending:
            u = work_units(r["commands"], train_sizes, dev_sizes)
            if not pretrain_done(r["dir"], r["commands"]["pretrain_steps"]):
                progress.add(r["key"], "pretrain", u["pretrain"])
            progress.add(r["key"], "finetune", u["finetune"])
        log(f"{len(archs)} architectures x {len(budgets)} budgets: {len(pending)} runs to do, {done_before} done "
            f"already; --jobs {a.jobs}; logs in {out_dir}/<budget>/<NN>/*.log")
        errors = execute(a, pending, progress)
    else:
        log(f"all {len(runs_by_key)} runs are done already")

    text, result = report(a, c, budgets, archs, sel_info, runs_by_key, errors, out_dir)
    write_atomic(os.path.join(out_dir, "proxy_fidelity.json"), json.dumps(result, indent=2) + "\n")
    write_atomic(os.path.join(out_dir, "proxy_fidelity.txt"), text)
    print(text, end="")
    print(f"wrote {os.path.join(out_dir, 'proxy_fidelity.json')}")
    failed = [k for k, e in errors.items() if e]
    return 1 if failed else 0


def _on_term(signum, frame):
    _stopping.set()
    _terminate_children()
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_term)
    try:
        sys.exit(main(sys.argv[1:]))
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        _stopping.set()
        _terminate_children()
        log("interrupted: rerun the same command to continue (finished runs are kept)")
        sys.exit(130)
