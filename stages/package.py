"""package stage: the release directory = the fine-tuned model + its model card (README.md).

The card needs the evaluation metrics, which exist only after the evaluate stage, and evaluate reads
data/model. Writing README.md into data/model afterwards would make one stage modify another stage's
output (DVC would then see train's output as changed on every run). So this last stage copies data/model
into data/release and adds the card there; `artifacts:` in dvc.yaml points at data/release. The copy costs
no cache space: DVC stores files by content hash, and the weights are byte-identical to data/model's.

Optional, off by default: package.onnx adds onnx/model.onnx, checked against PyTorch (stages/evaluation/
onnx_export.py); package.push_to_hub uploads the finished release to the Hugging Face Hub as the last step
(stages/evaluation/hub_push.py says why the push lives in this stage).
"""
from __future__ import annotations

from stages.common.errors import stage_entry
from stages.common.params import load_params
from stages.common.paths import check_outputs
from stages.evaluation import hub_push, onnx_export
from stages.evaluation.packaging import CARD_FILE, package


@stage_entry
def main() -> None:
    params = load_params()
    check_outputs(params, "package")
    # The optional steps' prerequisites are checked before anything is written.
    if params.package.onnx:
        onnx_export.check_available()
    if params.package.push_to_hub:
        hub_push.check_token()
    release, names, onnx_check = package(params)
    print(f"package: model + model card ({release / CARD_FILE}) -> {release}; labels {names}")
    if onnx_check is not None:
        print(f"package: ONNX model -> {release / onnx_export.ONNX_DIR / onnx_export.ONNX_FILE}; ONNX Runtime vs "
              f"PyTorch probabilities: max abs diff {onnx_check['max_abs_diff']:.2g} (tolerance "
              f"{onnx_check['tolerance']:g}); export {onnx_check['export_seconds']} s")
    if params.package.push_to_hub:
        url = hub_push.push_release(release, params.package)  # last: a failed push leaves the release complete
        print(f"package: pushed {release} to the Hub: {url}")


if __name__ == "__main__":
    main()
