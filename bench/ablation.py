"""Issue 14's ablation: each lever of the builtin model alone, and the chosen combination, against TF-IDF.

For each dataset of ../shared/data: a throwaway git + DVC copy of this project with only `data.train_csv` changed
(bench/results.py's make_copy), one `dvc repro` of params.yaml as committed, then for each lever and seed
`dvc exp run -S <lever's params> -S train.seed=<s> -S model.builtin.seed=<s>` from the committed params.yaml.
The split (and so the valid texts, and TF-IDF's score) is the same for every run of a dataset; only the
stages a lever's params reach rerun, and each run's wall time is that of its `dvc exp run`.

    python -m bench.ablation                              # all levers, all datasets, 3 seeds: hours on 2 cores
    python -m bench.ablation --levers default lr_3e-4 chabsa --seeds 1
    python -m bench.ablation --list                        # the levers and their params
    python -m bench.ablation --json out.json --keep runs/  # figures as JSON; keep the copies

Prints a Markdown table: valid macro-F1 mean ± sd over seeds per lever and dataset, TF-IDF's score, and the
mean wall time of the lever's runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.results import DATASETS, SHARED, blend_macro_f1, make_copy, read_scores

# Each lever as `dvc exp run -S` values on top of params.yaml as committed. "default" is params.yaml itself.
LEVERS: dict[str, dict[str, object]] = {
    "default": {},
    "before_issue_14": {"train.learning_rate": 0.0001, "train.epochs": 5,
                        "model.builtin.pretrain_group_by_length": False},
    "finetune_lr_1e-4": {"train.learning_rate": 0.0001},
    "finetune_5_epochs": {"train.epochs": 5},
    "pretrain_ungrouped": {"model.builtin.pretrain_group_by_length": False},
    "pretrain_600_steps": {"model.pretrain_steps": 600},
    "chive": {"model.builtin.word_vectors": "chive"},
    "whole_word": {"model.builtin.masking": "whole_word"},
    "cls_bag_of_words": {"model.builtin.cls_objective": "bag_of_words"},
    "cosine": {"model.builtin.pretrain_lr_schedule": "cosine"},
    "layers_2": {"model.builtin.num_hidden_layers": 2},
    "finetune_batch_32": {"train.batch_size": 32},
    "class_weights_none": {"train.class_weights": "none"},
    "class_weights_sqrt": {"train.class_weights": "sqrt"},
    # WordPiece keeps every character (and its "##" form) whatever the size: on chABSA's 1,651 training texts that
    # is ~2,780 entries, so 200 means characters only and 4000 about 1,200 multi-character words.
    "vocab_4000": {"model.builtin.vocab_size": 4000},
    "vocab_characters": {"model.builtin.vocab_size": 200},
    # Half the layers pretrained twice as long: about the same pretraining time as the default.
    "layers_2_pretrain_600": {"model.builtin.num_hidden_layers": 2, "model.pretrain_steps": 600},
    "select_on_dev_loss": {"train.metric_for_best_model": "loss"},
}


def cli_value(value: object) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def exp_command(settings: dict[str, object], seed: int) -> list[str]:
    command = ["dvc", "exp", "run", "-q"]
    for key, value in {**settings, "train.seed": seed, "model.builtin.seed": seed}.items():
        command += ["-S", f"{key}={cli_value(value)}"]
    return command


def run(command: list[str], dest: Path, env: dict) -> float:
    started = time.monotonic()
    result = subprocess.run(command, cwd=dest, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{dest.name}: {' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.monotonic() - started


def ablate(name: str, dest: Path, levers: list[str], seeds: int, base: dict[str, object]) -> dict:
    make_copy(dest, {"data.train_csv": str(SHARED / DATASETS[name] / "data.csv"), **base})
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               HF_HUB_OFFLINE="1")
    first_seed = yaml.safe_load((dest / "params.yaml").read_text(encoding="utf-8"))["train"]["seed"]
    repro_seconds = run(["dvc", "repro", "-q"], dest, env)
    scores = read_scores(dest)
    summary = json.loads((dest / "data/split/summary.json").read_text())
    row = {"dataset": name, "valid_rows": sum(summary["class_counts"]["valid"].values()),
           "tfidf": scores["tfidf"]["valid"]["macro_f1"], "repro_seconds": round(repro_seconds), "levers": {}}
    print(f"{name}: dvc repro {repro_seconds:.0f} s, fine-tuned {scores['valid']['macro_f1']:.4f}, "
          f"TF-IDF {row['tfidf']:.4f}", file=sys.stderr, flush=True)
    for lever in levers:
        f1s, blends, seconds = [], [], []
        for number in range(seeds):
            seed = first_seed + number
            if lever == "default" and number == 0:
                f1s.append(scores["valid"]["macro_f1"])
                blends.append(blend_macro_f1(scores))
                seconds.append(repro_seconds)
            else:
                subprocess.run(["git", "checkout", "-q", "--", "params.yaml"], cwd=dest, check=True)
                seconds.append(run(exp_command(LEVERS[lever], seed), dest, env))
                run_scores = read_scores(dest)
                f1s.append(run_scores["valid"]["macro_f1"])
                blends.append(blend_macro_f1(run_scores))
            print(f"{name}: {lever} seed {seed}: macro-F1 {f1s[-1]:.4f} ({seconds[-1]:.0f} s)", file=sys.stderr,
                  flush=True)
        row["levers"][lever] = {"runs": f1s, "mean": statistics.mean(f1s),
                                "sd": statistics.stdev(f1s) if len(f1s) > 1 else 0.0,
                                "seconds": round(statistics.mean(seconds)), "blend_runs": blends,
                                "blend": statistics.mean(blends)}
    return row


def markdown(rows: list[dict], levers: list[str]) -> str:
    head = "| lever | " + " | ".join(f"{r['dataset']} (TF-IDF {r['tfidf']:.3f})" for r in rows) + " |"
    lines = [head, "|---|" + "---|" * len(rows)]
    for lever in levers:
        cells = []
        for r in rows:
            s = r["levers"][lever]
            cells.append(f"{s['mean']:.3f} ± {s['sd']:.3f} ({s['mean'] - r['tfidf']:+.3f}; {s['seconds']} s)")
        lines.append(f"| {lever} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", help=f"some of {', '.join(DATASETS)} (default: all)")
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), help="levers to run (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per lever (default 3)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="param override applied to the copy before everything (the base of every lever)")
    parser.add_argument("--keep", type=Path, help="keep each dataset's copy under this directory")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--list", action="store_true", help="print the levers and exit")
    args = parser.parse_args()
    if args.list:
        for lever, settings in LEVERS.items():
            print(f"{lever}: {' '.join(f'-S {k}={cli_value(v)}' for k, v in settings.items()) or '(params.yaml)'}")
        return
    datasets = args.datasets or list(DATASETS)
    unknown = [n for n in datasets if n not in DATASETS] + [lever for lever in args.levers if lever not in LEVERS]
    if unknown:
        parser.error(f"unknown {unknown}; datasets: {', '.join(DATASETS)}; levers: {', '.join(LEVERS)}")
    base = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="ablation-") as scratch:
        root = args.keep or Path(scratch)
        for name in datasets:
            dest = root / name
            shutil.rmtree(dest, ignore_errors=True)
            rows.append(ablate(name, dest, args.levers, args.seeds, base))
            if args.json:
                args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows, args.levers))


if __name__ == "__main__":
    main()
