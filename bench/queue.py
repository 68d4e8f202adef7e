"""Queued experiments run at once share the CPU cores: the same four experiments with `-j 1` and with `-j 2`.

In a temporary copy of this project (git + DVC, params.yaml as here unless --tiny / --set), `dvc repro` runs
the baseline once and is committed. Then, for each job count, a fresh copy of that baseline queues the same
four experiments, which change only train.learning_rate (`dvc exp run --queue -S train.learning_rate=...`), and
runs them with `dvc exp run --run-all -j N`: the queue workers of `dvc queue start -j N`, plus waiting until
every experiment has finished. A fresh copy per job count, so no run finds another's results in DVC's run cache.
Prints the wall time of each job count and the ratio; with shared cores (stages/common/threads.py), `-j 2`
should take no longer than `-j 1`. Run it on an otherwise idle machine: other load distorts both figures.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

LR_FACTORS = (0.5, 0.75, 1.5, 2.0)  # of the baseline's train.learning_rate: never the baseline's own value


def environment() -> dict:
    """The queue workers start `dvc` and the stages start `python`: both from this interpreter's environment."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("TQDM_DISABLE", "1")
    return env


def dvc(repo: Path, *args: str) -> str:
    result = subprocess.run(["dvc", *args], cwd=repo, env=environment(), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed in {repo}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def parse_sets(pairs: list[str]) -> dict:
    """`section.key=value` pairs (values as YAML) into a nested dict of params.yaml overrides."""
    overrides: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {pair}: expected section.key=value, e.g. train.epochs=1")
        *sections, leaf = key.split(".")
        node = overrides
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = yaml.safe_load(value)
    return overrides


def run_queue(baseline: Path, dest: Path, jobs: int, learning_rates: list[float]) -> tuple[float, str]:
    """Wall seconds of `dvc exp run --run-all -j jobs` over the four queued experiments, and their log."""
    repo = Path(shutil.copytree(baseline, dest, symlinks=True))
    for rate in learning_rates:
        dvc(repo, "exp", "run", "--queue", "-S", f"train.learning_rate={rate}")
    start = time.perf_counter()
    log = dvc(repo, "exp", "run", "--run-all", "-j", str(jobs))
    seconds = time.perf_counter() - start
    status = dvc(repo, "queue", "status")
    done = sum(" Success" in line for line in status.splitlines())
    dvc(repo, "queue", "stop")
    if done != len(learning_rates):
        raise SystemExit(f"-j {jobs}: {done} of {len(learning_rates)} experiments succeeded:\n{status}\n{log[-3000:]}")
    return seconds, log


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true",
                        help="the tests' tiny model and short training (tests/conftest.py TINY): minutes, not hours")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml override for the baseline, e.g. --set train.epochs=1 (repeatable)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="job counts to time, in order")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the repos here (default: a temporary folder, removed at the end)")
    args = parser.parse_args()

    # tests/conftest.py copies the project and initialises git; imported here so --help needs no pytest.
    from tests.conftest import TINY, deep_update, make_pipeline_repo

    root = Path(tempfile.mkdtemp(prefix="bench-queue-")) if args.workdir is None else args.workdir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        # make_pipeline_repo always applies TINY; without --tiny, put this project's own values back.
        own = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
        undo_tiny = {section: {key: own[section][key] for key in values} for section, values in TINY.items()}
        baseline = make_pipeline_repo(root / "baseline", deep_update({} if args.tiny else undo_tiny,
                                                                       parse_sets(args.set)))
        params = yaml.safe_load((baseline / "params.yaml").read_text(encoding="utf-8"))
        # The resolved rate (learning_rate: auto becomes the number for model.name), as the train stage uses it.
        from stages.common.params import parse_params
        base_rate = parse_params(params).train.learning_rate
        learning_rates = [float(f"{base_rate * f:.3g}") for f in LR_FACTORS]
        print(f"baseline: dvc repro in {baseline} ...", flush=True)
        start = time.perf_counter()
        dvc(baseline, "repro")
        print(f"baseline: {time.perf_counter() - start:.0f} s; experiments: train.learning_rate in {learning_rates}; "
              f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} CPUs, "
              f"JA_TEXTCLF_THREADS={os.environ.get('JA_TEXTCLF_THREADS', '(unset: shared)')}", flush=True)
        subprocess.run(["git", "add", "-A"], cwd=baseline, check=True, capture_output=True)
        subprocess.run(["git", "commit", "-qm", "baseline run"], cwd=baseline, check=True, capture_output=True)
        times = {}
        for jobs in args.jobs:
            seconds, log = run_queue(baseline, root / f"jobs_{jobs}", jobs, learning_rates)
            shared = sum("pipeline processes share" in line for line in log.splitlines())
            times[jobs] = seconds
            print(f"-j {jobs}: {len(learning_rates)} experiments in {seconds:.0f} s "
                  f"({shared} notes of shared cores in their logs)", flush=True)
        first = args.jobs[0]
        for jobs in args.jobs[1:]:
            print(f"ratio -j {jobs} / -j {first}: {times[jobs] / times[first]:.2f}")
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
