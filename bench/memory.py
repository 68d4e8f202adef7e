"""Peak memory of every stage on a large dataset (issue 16: 100k rows, the largest stage under 4 GiB).

Builds a CSV of --rows rows from ../shared/data/chabsa_sentiment (each text repeated with a numbered suffix, so
every row is a distinct text with its real label; the split's duplicate rules see no duplicates), makes a
throwaway copy of this project pointing at it (bench/results.py's make_copy), and runs each stage of dvc.yaml's
default chain in order, `dvc repro --single-item <stage>` under `/usr/bin/time -f %M`: the peak resident set size
of the largest process of that run (DVC's own, about 200 MiB, or the stage's python, whichever is larger). Training is cut to --train-steps steps and pretraining to --pretrain-steps (what is measured is
holding the data, not learning from it), so evaluate still scores every valid and dev row.

    python -m bench.memory                     # 100,000 rows: about half an hour on 2 cores
    python -m bench.memory --rows 20000 --keep runs/memory

Prints one line per stage (peak RSS in MiB, wall seconds) and a Markdown table at the end.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import SHARED, make_copy

STAGES = ("check_paths", "split", "base_model", "tokenize", "embed", "train", "baselines", "evaluate", "submit",
          "package")
SOURCE = SHARED / "chabsa_sentiment" / "data.csv"


def write_large_csv(path: Path, rows: int) -> int:
    """`rows` distinct labelled rows: the source texts, then each again with a numbered suffix （2）, （3）, ..."""
    with SOURCE.open(encoding="utf-8", newline="") as handle:
        source = [(row["text"], row["label"]) for row in csv.DictReader(handle)]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for number in range(rows):
            text, label = source[number % len(source)]
            copy = number // len(source)
            writer.writerow([text if copy == 0 else f"{text}（{copy + 1}）", label])
    return rows


def run_stage(repo: Path, stage: str, env: dict) -> tuple[int, float]:
    """(peak RSS in KiB, wall seconds) of `dvc repro --single-item <stage>` in `repo`: Linux reports the largest
    of the process and its waited-for children (the stage's command)."""
    report = repo / f".rss_{stage}"
    started = time.monotonic()
    result = subprocess.run(["/usr/bin/time", "-o", str(report), "-f", "%M", "dvc", "repro", "--single-item", stage],
                            cwd=repo, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{stage} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return int(report.read_text().split()[-1]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--pretrain-steps", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="keep the copy here (default: a temporary folder, removed)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-memory-")) if args.keep is None else args.keep.resolve()
    repo = root / "project"
    try:
        root.mkdir(parents=True, exist_ok=True)
        data = root / "large.csv"
        write_large_csv(data, args.rows)
        make_copy(repo, {"data.train_csv": str(data), "model.pretrain_steps": args.pretrain_steps,
                         "train.max_steps": args.train_steps, "train.eval_strategy": "steps",
                         "train.eval_steps": args.train_steps, "train.save_strategy": "steps",
                         "train.save_steps": args.train_steps})
        env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        print(f"{args.rows} rows from {SOURCE.parent.name}; copy in {repo}; "
              f"JA_TEXTCLF_THREADS={os.environ.get('JA_TEXTCLF_THREADS', '(unset)')}", flush=True)
        lines = ["| stage | peak RSS (MiB) | wall (s) |", "|---|---|---|"]
        for stage in STAGES:
            peak_kib, seconds = run_stage(repo, stage, env)
            print(f"{stage}: peak RSS {peak_kib / 1024:.0f} MiB, {seconds:.0f} s", flush=True)
            lines.append(f"| {stage} | {peak_kib / 1024:.0f} | {seconds:.0f} |")
        print("\n".join(lines))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
