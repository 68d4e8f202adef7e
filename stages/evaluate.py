"""evaluate stage: score the fine-tuned model once on valid (and a labelled test file), with the baselines.

Writes metrics, plots, per-text predictions and report.md (stages/evaluation/evaluator.py lists the files),
then prints a short summary; `python -m stages.evaluate --summary` prints that summary again without scoring.
"""
from __future__ import annotations

import argparse
import sys

from stages.common.errors import stage_entry
from stages.common.params import load_params
from stages.common.paths import check_outputs
from stages.common.threads import shares_cores
from stages.evaluation.evaluator import evaluate
from stages.evaluation.summary import summary_lines


@stage_entry
@shares_cores
def main() -> None:
    cli = argparse.ArgumentParser(prog="python -m stages.evaluate", description=__doc__.splitlines()[0])
    cli.add_argument("--summary", action="store_true", help="print the summary of the last run and exit")
    args = cli.parse_args(sys.argv[1:])
    params = load_params()
    if not args.summary:
        check_outputs(params, "evaluate")
        evaluate(params)
    print("\n".join(summary_lines(params)))


if __name__ == "__main__":
    main()
