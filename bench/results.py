"""README "Results": the default pipeline (params.yaml as committed) on the real datasets in ../shared/data.

For each dataset: a throwaway git + DVC copy of this project with only `data.train_csv` changed, one
`dvc repro`, then the valid macro-F1 of the fine-tuned model and of the baselines from metrics.json.

    python -m bench.results                       # all three datasets, Markdown table on stdout
    python -m bench.results --keep runs/ chabsa   # keep the copies (reports in runs/<name>/data/eval/)
    python -m bench.results --set train.epochs=10 # any param override, as with `dvc exp run -S`
    python -m bench.results --seeds 3             # mean ± sd over 3 training seeds (train.seed, model.builtin.seed)
    python -m bench.results --seed-keys train.seed  # vary fine-tuning only: the base model is built once

With --seeds N the first seed is a full `dvc repro`; the others are `dvc exp run -S train.seed=... -S
model.builtin.seed=...` in the same copy, so the split and the baselines (which do not depend on those seeds)
are computed once and every seed is scored on the same valid texts.
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

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DATASETS = {"toxic": "ja_toxic_inspection", "chabsa": "chabsa_sentiment", "jcola": "jcola_acceptability"}


def project_files() -> list[str]:
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.split("\n")
    return [name for name in listing if name and name != "dvc.lock" and (REPO / name).is_file()]


def set_param(params: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = params
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def make_copy(dest: Path, overrides: dict[str, object]) -> None:
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    params = yaml.safe_load((dest / "params.yaml").read_text(encoding="utf-8"))
    for key, value in overrides.items():
        set_param(params, key, value)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)


def read_scores(dest: Path) -> dict:
    metrics = json.loads((dest / "data/eval/metrics.json").read_text())
    metrics.update(json.loads((dest / "data/baselines/metrics.json").read_text()))
    return metrics


def blend_macro_f1(scores: dict) -> float:
    """The blend's valid macro-F1 from read_scores (NaN for a run without one: evaluate.blend_tfidf false)."""
    return scores.get("blend", {}).get("valid", {}).get("macro_f1", float("nan"))


def run_dataset(name: str, dest: Path, overrides: dict[str, object], seeds: int = 1,
                seed_keys: tuple[str, ...] = ("train.seed", "model.builtin.seed")) -> dict:
    csv = SHARED / DATASETS[name] / "data.csv"
    make_copy(dest, {"data.train_csv": str(csv), **overrides})
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               HF_HUB_OFFLINE="1")
    base_seed = yaml.safe_load((dest / "params.yaml").read_text(encoding="utf-8"))["train"]["seed"]
    fine_tuned, blends, seconds = [], [], []
    for number in range(seeds):
        seed = base_seed + number
        command = ["dvc", "repro"] if number == 0 else [
            "dvc", "exp", "run", *[part for key in seed_keys for part in ("-S", f"{key}={seed}")]]
        started = time.monotonic()
        result = subprocess.run(command, cwd=dest, env=env, capture_output=True, text=True)
        seconds.append(time.monotonic() - started)
        if result.returncode != 0:
            raise SystemExit(f"{name}: {' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        scores = read_scores(dest)
        fine_tuned.append(scores["valid"]["macro_f1"])
        blends.append(blend_macro_f1(scores))
        print(f"{name}: seed {seed}: fine-tuned macro-F1 {fine_tuned[-1]:.4f} ({seconds[-1]:.0f} s)",
              file=sys.stderr, flush=True)
    metrics = read_scores(dest)
    summary = json.loads((dest / "data/split/summary.json").read_text())
    return {"dataset": name, "classes": len(summary["label_names"]),
            "rows": sum(sum(c.values()) for c in summary["class_counts"].values()),
            "valid": sum(summary["class_counts"]["valid"].values()), "seconds": round(seconds[0]),
            "seeds": seeds, "fine_tuned_runs": fine_tuned,
            "fine_tuned": statistics.mean(fine_tuned), "fine_tuned_sd": statistics.stdev(fine_tuned) if seeds > 1 else 0.0,
            "blend_runs": blends, "blend": statistics.mean(blends),
            "blend_sd": statistics.stdev(blends) if seeds > 1 else 0.0,
            "fine_tuned_ci95": [  # the last seed's run
                metrics["valid"]["macro_f1_ci95_low"], metrics["valid"]["macro_f1_ci95_high"]],
            "probe": metrics["probe"]["valid"]["macro_f1"],
            "mteb": metrics["mteb"]["valid"]["macro_f1_mean"], "mteb_std": metrics["mteb"]["valid"]["macro_f1_std"],
            "knn": metrics["knn"]["valid"]["macro_f1"], "tfidf": metrics["tfidf"]["valid"]["macro_f1"],
            "tfidf_ci95": [metrics["tfidf"]["valid"]["macro_f1_ci95_low"], metrics["tfidf"]["valid"]["macro_f1_ci95_high"]],
            "accuracy": metrics["valid"]["accuracy"], "tfidf_accuracy": metrics["tfidf"]["valid"]["accuracy"]}


def markdown(rows: list[dict]) -> str:
    """The README's Results table: the fine-tuned model's mean ± sd over seeds and the last seed's interval beside
    TF-IDF's, the blend, the frozen-vector probe, and the first seed's (full) `dvc repro` time."""
    lines = ["| dataset | classes | rows (valid) | fine-tuned builtin, mean ± sd | 95% CI (last seed) | TF-IDF (95% CI) | "
             "fine-tuned − TF-IDF | blend with TF-IDF | linear probe | `dvc repro` |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        low, high = r["tfidf_ci95"]
        model_low, model_high = r["fine_tuned_ci95"]
        lines.append(f"| {r['dataset']} | {r['classes']} | {r['rows']} ({r['valid']}) | **{r['fine_tuned']:.3f}** ± "
                     f"{r['fine_tuned_sd']:.3f} ({r['seeds']} seeds) | {model_low:.3f}–{model_high:.3f} | "
                     f"{r['tfidf']:.3f} ({low:.3f}–{high:.3f}) | {r['fine_tuned'] - r['tfidf']:+.3f} | "
                     f"{r['blend']:.3f} ± {r['blend_sd']:.3f} | {r['probe']:.3f} | {r['seconds']} s |")
    return "\n".join(lines)


def parse_value(text: str):
    return yaml.safe_load(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", help=f"some of {', '.join(DATASETS)} (default: all)")
    parser.add_argument("--keep", type=Path, help="keep each run's copy under this directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="param override")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--seed-keys", default="train.seed,model.builtin.seed",
                        help="params set to each seed (default: train.seed,model.builtin.seed; train.seed alone keeps "
                             "the base model and varies only fine-tuning, at about half the time)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per dataset (default 3)")
    args = parser.parse_args()
    args.datasets = args.datasets or list(DATASETS)
    unknown = [n for n in args.datasets if n not in DATASETS]
    if unknown:
        parser.error(f"unknown dataset {unknown}; choose from {', '.join(DATASETS)}")
    overrides = {key: parse_value(value) for key, value in (item.split("=", 1) for item in args.set)}
    missing = [n for n in args.datasets if not (SHARED / DATASETS[n] / "data.csv").is_file()]
    if missing:
        raise SystemExit(f"{SHARED}: no data for {missing}; this benchmark needs ../shared/data")
    rows = []
    with tempfile.TemporaryDirectory(prefix="results-") as scratch:
        root = args.keep or Path(scratch)
        for name in args.datasets:
            dest = root / name
            shutil.rmtree(dest, ignore_errors=True)
            print(f"{name}: dvc repro in {dest} ...", file=sys.stderr, flush=True)
            rows.append(run_dataset(name, dest, overrides, args.seeds, tuple(args.seed_keys.split(","))))
            print(f"{name}: fine-tuned {rows[-1]['fine_tuned']:.3f} ± {rows[-1]['fine_tuned_sd']:.3f}, "
                  f"TF-IDF {rows[-1]['tfidf']:.3f} "
                  f"({rows[-1]['seconds']} s)", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
