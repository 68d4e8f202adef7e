"""train stage: fine-tune the base model on the train split with the Trainer (stages/modeling/training.py).

Resumes an interrupted run with the same deps and params; `train.nproc > 1` re-executes this module
under torchrun. The model goes to `paths.model`, the curves (DVCLive) to `paths.train_log`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# MKL (fp32 matmuls on CPU) picks code paths by memory alignment, which varies from process to process:
# without this, two runs with the same params differ in the last digits. STRICT keeps the fast paths.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from stages.common.errors import stage_entry  # noqa: E402
from stages.common.params import load_params  # noqa: E402
from stages.common.paths import check_outputs  # noqa: E402
from stages.common.threads import before_torchrun, shares_cores  # noqa: E402
from stages.dataset.windows import LongText  # noqa: E402
from stages.evaluation.metrics import PREDICTED_CLASSES  # noqa: E402
from stages.modeling.checkpointing import check_train_dir  # noqa: E402
from stages.modeling.training import train_and_save  # noqa: E402


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def torchrun_command(nproc: int) -> list[str]:
    """torchrun's own entry point (`python -m torch.distributed.run`), single node, this module."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "stages.train"]


@stage_entry
@shares_cores
def main() -> None:
    params = load_params()
    check_outputs(params, "train")
    if params.train.nproc > 1 and not under_torchrun():
        # Refused here, once, rather than inside a rank that torchrun would report as a crash.
        check_train_dir(Path(params.paths.train_dir))
        sys.stdout.flush()
        before_torchrun()  # its ranks share the cores instead of this launcher
        os.execv(sys.executable, torchrun_command(params.train.nproc))
    kept, speed = train_and_save(params.paths, params.train, params.evaluate.positive_label,
                                 LongText.from_params(params.tokenize), params.data.text_pair_column,
                                 params.data.label_separator if params.data.task == "multi_label" else None)
    if int(os.environ.get("RANK", "0")) == 0:
        if not kept:
            summary = "no evaluation (train.eval_strategy: no)"
        elif "threshold" in kept:  # data.task multi_label
            summary = (f"dev micro-F1 {kept['eval_micro_f1']:.4f}, macro-F1 {kept['eval_macro_f1']:.4f} at 0.5 "
                       f"(step {kept['step']}); threshold {kept['threshold']:.2f} chosen on dev")
        elif "eval_macro_f1" in kept:
            summary = (f"dev macro-F1 {kept['eval_macro_f1']:.4f}, accuracy {kept['eval_accuracy']:.4f} "
                       f"(step {kept['step']})")
        else:  # data.task regression
            summary = (f"dev Spearman {kept['eval_spearman']:.4f}, Pearson {kept['eval_pearson']:.4f}, "
                       f"MSE {kept['eval_mse']:.4f} (step {kept['step']})")
        print(f"train: {summary}; {speed.summary()} -> {params.paths.model}; curves: {params.paths.train_log}")
        if kept and kept.get(f"eval_{PREDICTED_CLASSES}") == 1:
            print("train: warning: the kept model gives every dev text the same class (it has not learned the labels); "
                  "try more train.epochs, another train.learning_rate, or a pretrained model.name")

if __name__ == "__main__":
    main()
