"""cv_train stage, one instance per fold (`cv_train@<fold>`, DVC's foreach over split.fold_ids): fine-tune the
base model on the fold's training rows, choose on its dev rows, and predict its held-out rows and the test split
(stages/modeling/cross_validation.py). `train.nproc > 1` re-executes this module under torchrun.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# As in the train stage: MKL picks code paths by memory alignment; STRICT keeps reruns bit-identical.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from stages.common.errors import UserError, stage_entry  # noqa: E402
from stages.common.params import load_params  # noqa: E402
from stages.common.paths import check_outputs  # noqa: E402
from stages.common.threads import before_torchrun, shares_cores  # noqa: E402
from stages.modeling.cross_validation import check_cv_train_dir, train_fold  # noqa: E402


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


@stage_entry
@shares_cores
def main() -> None:
    cli = argparse.ArgumentParser(prog="python -m stages.cv_train", description=__doc__.split("\n")[0])
    cli.add_argument("--fold", type=int, required=True, help="fold number, 1..split.folds")
    fold = cli.parse_args().fold
    params = load_params()
    if fold not in params.split.fold_ids:
        raise UserError(f"--fold {fold}: not a fold of split.folds {params.split.folds} "
                        f"(folds: {params.split.fold_ids or 'none, cross-validation is off'})")
    check_outputs(params, "cv_train")
    if params.train.nproc > 1 and not under_torchrun():
        check_cv_train_dir(Path(params.paths.cv_train_dir))
        sys.stdout.flush()
        before_torchrun()  # its ranks share the cores instead of this launcher
        os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  f"--nproc_per_node={params.train.nproc}", "-m", "stages.cv_train", "--fold", str(fold)])
    metrics, speed = train_fold(params, fold)
    if metrics is not None:
        dev = (f"dev macro-F1 {metrics['dev']['macro_f1']:.4f} (step {metrics['dev']['step']}), " if metrics["dev"]
               else "")
        print(f"cv_train: fold {fold}: {dev}held-out macro-F1 {metrics['heldout']['macro_f1']:.4f} on "
              f"{metrics['rows']['heldout']} rows; {speed.summary()} -> {params.paths.cv}/fold_{fold}")


if __name__ == "__main__":
    main()
