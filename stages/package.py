"""package stage: the release directory = the fine-tuned model + its model card (README.md).

The card needs the evaluation metrics, which exist only after the evaluate stage, and evaluate reads
data/model. Writing README.md into data/model afterwards would make one stage modify another stage's
output (DVC would then see train's output as changed on every run). So this last stage copies data/model
into data/release and adds the card there; `artifacts:` in dvc.yaml points at data/release. The copy costs
no cache space: DVC stores files by content hash, and the weights are byte-identical to data/model's.
"""
from __future__ import annotations

from stages.common.errors import stage_entry
from stages.common.params import load_params
from stages.common.paths import check_outputs
from stages.evaluation.packaging import CARD_FILE, package


@stage_entry
def main() -> None:
    params = load_params()
    check_outputs(params, "package")
    release, names = package(params)
    print(f"package: model + model card ({release / CARD_FILE}) -> {release}; labels {names}")


if __name__ == "__main__":
    main()
