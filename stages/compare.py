"""compare command: is run B really better than run A, on the same scored texts?

    python -m stages.compare                      # HEAD against the workspace
    python -m stages.compare main my-branch       # any git revision, branch or tag, or a DVC experiment name
    python -m stages.compare HEAD exp-1a2b3 --md  # Markdown, for a pull-request comment
    python -m stages.compare --baseline           # within one run: the fine-tuned model against TF-IDF
    python -m stages.compare --table              # every experiment: params that differ, headline metrics

Installed as `ja-textclf-compare`. Reads each side's per-text predictions (`<paths.eval>/predictions.csv`)
through DVC (`dvc.api.open` with `rev=`; the workspace file for `workspace`), checks that both sides scored
the same texts with the same gold labels, and prints macro-F1 and accuracy of each side, the paired
bootstrap 95% interval of the difference, McNemar's exact test, and one line in words.
"""
from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from stages.common.errors import UserError, stage_entry
from stages.common.params import load_params
from stages.evaluation.significance import (
    McNemar,
    PairedDifference,
    mcnemar,
    paired_difference,
    verdict,
)

WORKSPACE = "workspace"
PREDICTIONS = "predictions.csv"
BASELINE_COLUMN = "tfidf_predicted"  # TF-IDF's label per text, beside the fine-tuned model's


@dataclass
class Side:
    name: str
    texts: list[str]
    gold: list[str]
    predicted: list[str]


def read_predictions(path: str, rev: str) -> pd.DataFrame:
    """The predictions file of a revision (git revision, branch, tag, DVC experiment) or of the workspace."""
    if rev == WORKSPACE:
        try:
            with open(path, encoding="utf-8") as handle:
                return pd.read_csv(handle, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise UserError(f"{path}: not found in the workspace; run `dvc repro` first") from None
    import dvc.api
    from dvc.exceptions import DvcException
    from dvc.scm import RevError

    try:
        with dvc.api.open(path, rev=rev, encoding="utf-8") as handle:
            return pd.read_csv(io.StringIO(handle.read()), dtype=str, keep_default_na=False)
    except RevError:
        raise UserError(f"{rev!r}: not a git revision, branch, tag or DVC experiment of this repository "
                        f"(`dvc exp show` lists experiments)") from None
    except (FileNotFoundError, DvcException) as err:
        raise UserError(f"{path} at {rev!r}: not available ({type(err).__name__}); that revision has no evaluate "
                        f"output, or its DVC cache is missing here (`dvc pull` or `dvc exp pull` it)") from None


def scored_rows(frame: pd.DataFrame, split: str, label: str) -> pd.DataFrame:
    missing = {"split", "text", "gold", "predicted"} - set(frame.columns)
    if missing:
        raise UserError(f"{label}: {PREDICTIONS} lacks the columns {sorted(missing)}; rerun `dvc repro evaluate`")
    rows = frame[frame["split"] == split]
    if rows.empty or (rows["gold"] == "").all():
        raise UserError(f"{label}: no labelled {split!r} rows in {PREDICTIONS}")
    return rows


def single_label_task(rows: pd.DataFrame, label: str) -> None:
    """The paired tests here count a prediction as right or wrong: one class per text. A regression run's file
    has no class probabilities; a multi-label run's label probabilities are independent sigmoids, whose rows do
    not sum to 1 as a softmax's do (up to the 6-digit rounding of the file)."""
    probabilities = [column for column in rows.columns if column.startswith("p_")]
    if not probabilities:
        task = "a regression run (no class probabilities)"
    elif (rows[probabilities].apply(pd.to_numeric, errors="coerce").sum(axis=1) - 1).abs().max() > 1e-4:
        task = "a multi-label run (label probabilities that do not sum to 1)"
    else:
        return
    raise UserError(f"{label}: {PREDICTIONS} is from {task}; compare judges single-label runs only: use "
                    f"`dvc metrics diff` (with its 95% interval keys) for regression and multi-label runs")


def load_side(path: str, rev: str, split: str) -> Side:
    rows = scored_rows(read_predictions(path, rev), split, rev)
    single_label_task(rows, rev)
    return Side(rev, rows["text"].tolist(), rows["gold"].tolist(), rows["predicted"].tolist())


def check_same_texts(a: Side, b: Side, split: str) -> None:
    """Paired tests need the same texts with the same gold labels on both sides, in the same order."""
    if a.texts == b.texts and a.gold == b.gold:
        return
    common = len(set(a.texts) & set(b.texts))
    if a.texts == b.texts:
        row = next(i for i, (x, y) in enumerate(zip(a.gold, b.gold)) if x != y)
        raise UserError(f"the {split} texts of {a.name} and {b.name} are the same but their gold labels differ "
                        f"(first at row {row + 1}: {a.gold[row]!r} vs {b.gold[row]!r}); the label data changed, "
                        f"so the runs cannot be compared")
    raise UserError(f"the {split} texts differ: {a.name} has {len(a.texts)}, {b.name} has {len(b.texts)}, "
                    f"{common} in common; runs on different data or a different split (data.*, split.*) cannot "
                    f"be compared text by text")


def encode(labels: Sequence[str], names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels], dtype=np.int64)


@dataclass
class Comparison:
    a: Side
    b: Side
    split: str
    macro_f1: PairedDifference
    accuracy: PairedDifference
    test: McNemar


def compare(a: Side, b: Side, split: str) -> Comparison:
    check_same_texts(a, b, split)
    names = sorted(set(a.gold) | set(a.predicted) | set(b.predicted))
    gold, pred_a, pred_b = encode(a.gold, names), encode(a.predicted, names), encode(b.predicted, names)
    # Macro-F1 over the gold classes (as the evaluate stage); predicted-only labels still count as errors.
    return Comparison(a, b, split,
                      paired_difference(gold, pred_a, pred_b, len(names), metric="macro_f1"),
                      paired_difference(gold, pred_a, pred_b, len(names), metric="accuracy"),
                      mcnemar(gold, pred_a, pred_b))


def render_text(result: Comparison) -> str:
    f, acc = result.macro_f1, result.accuracy
    width = max(len(result.a.name), len(result.b.name), 5) + 2
    lines = [f"compare: {result.split} split, {len(result.a.texts)} texts (same texts and gold labels on both sides)",
             f"{'':<{width}}{'macro-F1':>10}{'accuracy':>10}",
             f"{result.a.name:<{width}}{f.a:>10.4f}{acc.a:>10.4f}",
             f"{result.b.name:<{width}}{f.b:>10.4f}{acc.b:>10.4f}",
             f"{'B - A':<{width}}{f.difference:>+10.4f}{acc.difference:>+10.4f}",
             f"{'95% CI':<{width}}{f'{f.low:+.3f}..{f.high:+.3f}':>18}  (paired bootstrap, 1000 resamples)",
             f"McNemar: {result.test.only_a_right} texts only {result.a.name} gets right, "
             f"{result.test.only_b_right} only {result.b.name}; exact p = {result.test.p_value:.3g}",
             f"verdict: {verdict(f, result.a.name, result.b.name)}"]
    return "\n".join(lines) + "\n"


def render_markdown(result: Comparison) -> str:
    f, acc = result.macro_f1, result.accuracy

    def cell(text: str) -> str:
        return "`" + text.replace("`", "'").replace("|", "/") + "`"

    rows = [
        f"**{result.split}** split, {len(result.a.texts)} texts (same texts and gold labels on both sides)",
        "",
        "| | macro-F1 | accuracy |",
        "|---|---:|---:|",
        f"| A {cell(result.a.name)} | {f.a:.4f} | {acc.a:.4f} |",
        f"| B {cell(result.b.name)} | {f.b:.4f} | {acc.b:.4f} |",
        f"| B − A | {f.difference:+.4f} ({f.low:+.3f}..{f.high:+.3f}) | {acc.difference:+.4f} "
        f"({acc.low:+.3f}..{acc.high:+.3f}) |",
        "",
        f"Paired bootstrap 95% intervals (1000 resamples); McNemar exact p = {result.test.p_value:.3g} "
        f"({result.test.only_a_right} texts only A gets right, {result.test.only_b_right} only B).",
        "",
        f"**Verdict:** {verdict(f, 'A', 'B')}",
    ]
    return "\n".join(rows) + "\n"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="ja-textclf-compare",
        description="Compare two runs on the same scored texts: macro-F1 and accuracy of each, the paired bootstrap "
                    "95%% interval of the difference, McNemar's test, and a verdict in words.")
    cli.add_argument("a", nargs="?", default="HEAD", help="run A: git revision, branch, tag or DVC experiment (default HEAD)")
    cli.add_argument("b", nargs="?", default=WORKSPACE, help=f"run B (default: {WORKSPACE}, the files on disk now)")
    cli.add_argument("--split", default="valid", choices=("valid", "test"), help="scored split (default: valid)")
    cli.add_argument("--baseline", action="store_true",
                     help="compare TF-IDF (A) with the fine-tuned model (B) within run B, on the same texts")
    cli.add_argument("--md", action="store_true", help="print Markdown (for a pull-request comment)")
    cli.add_argument("--table", action="store_true",
                     help="instead: every experiment (dvc exp show) with its headline metrics and the params that differ")
    return cli


def baseline_sides(path: str, rev: str, split: str) -> tuple[Side, Side]:
    rows = scored_rows(read_predictions(path, rev), split, rev)
    single_label_task(rows, rev)
    if BASELINE_COLUMN not in rows.columns:
        raise UserError(f"{rev}: {PREDICTIONS} has no {BASELINE_COLUMN!r} column; rerun `dvc repro` with this version")
    texts, gold = rows["text"].tolist(), rows["gold"].tolist()
    return (Side(f"TF-IDF ({rev})", texts, gold, rows[BASELINE_COLUMN].tolist()),
            Side(f"fine-tuned ({rev})", texts, gold, rows["predicted"].tolist()))


TABLE_WIDTH = 99  # fits a 100-column terminal; `make compare` prints this table


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in (tree or {}).items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def experiment_rows(shown: list[dict]) -> list[tuple[str, dict, dict]]:
    """(label, params, metrics) per row of `dvc exp show --json`: the workspace, each commit, its experiments."""
    rows = []

    def add(entry: dict, label: str) -> None:
        data = entry.get("data") or {}
        params = {k: v for file in (data.get("params") or {}).values() for k, v in _flatten(file.get("data")).items()}
        metrics = {}
        for file in (data.get("metrics") or {}).values():
            metrics.update(_flatten(file.get("data")))
        rows.append((label, params, metrics))

    for entry in shown:
        add(entry, entry.get("name") or (entry["rev"] if entry["rev"] == WORKSPACE else entry["rev"][:7]))
        for experiment in entry.get("experiments") or []:
            for rev in experiment.get("revs", []):
                add(rev, f"└ {rev.get('name') or experiment.get('name') or rev['rev'][:7]}")
    return rows


def render_table(rows: list[tuple[str, dict, dict]]) -> str:
    """Headline metrics and the params that differ between rows, each line at most TABLE_WIDTH characters."""
    keys = sorted({key for _, params, _ in rows for key in params})
    changed = [key for key in keys if len({repr(params.get(key)) for _, params, _ in rows}) > 1
               and not key.startswith("paths.")]

    def number(value, digits: int = 4) -> str:
        return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"

    header = f"{'experiment':<18} {'macro-F1':>8} {'95% CI':>13} {'TF-IDF':>6} {'ECE':>5}  params that differ"
    lines = [header, "-" * min(TABLE_WIDTH, len(header) + 10)]
    for label, params, metrics in rows:
        ci = (f"{number(metrics.get('valid.macro_f1_ci95_low'), 3)}-{number(metrics.get('valid.macro_f1_ci95_high'), 3)}"
              if "valid.macro_f1_ci95_low" in metrics else "-")
        differing = " ".join(f"{key.split('.', 1)[-1]}={params.get(key)}" for key in changed)
        line = (f"{label[:18]:<18} {number(metrics.get('valid.macro_f1')):>8} {ci:>13} "
                f"{number(metrics.get('tfidf.valid.macro_f1'), 3):>6} {number(metrics.get('valid.ece'), 3):>5}  {differing}")
        lines.append(line if len(line) <= TABLE_WIDTH else line[:TABLE_WIDTH - 1] + "…")
    return "\n".join(lines) + "\n"


def experiments_table() -> str:
    import json
    import subprocess

    shown = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], capture_output=True, text=True)
    if shown.returncode != 0:
        raise UserError(f"dvc exp show failed: {shown.stderr.strip().splitlines()[-1] if shown.stderr.strip() else ''}")
    return render_table(experiment_rows(json.loads(shown.stdout)))


def run(argv: Sequence[str], stdout=None) -> Comparison | None:
    stdout = stdout or sys.stdout
    args = parser().parse_args(list(argv))
    if args.table:
        stdout.write(experiments_table())
        return None
    path = f"{load_params().paths.eval}/{PREDICTIONS}"
    if args.baseline:
        a, b = baseline_sides(path, args.b, args.split)
    else:
        a, b = load_side(path, args.a, args.split), load_side(path, args.b, args.split)
    result = compare(a, b, args.split)
    stdout.write(render_markdown(result) if args.md else render_text(result))
    return result


@stage_entry
def main(argv: Optional[Sequence[str]] = None) -> None:
    run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
