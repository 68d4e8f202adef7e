"""split stage: the user's CSV -> stratified train/valid (optional test) DatasetDict with a ClassLabel label."""
from __future__ import annotations

from pathlib import Path

import yaml

from stages.common.errors import stage_entry
from stages.common.params import load_params
from stages.common.paths import check_outputs
from stages.dataset.splitting import make_splits, save_split


def test_csv_tracked(dvc_yaml: Path = Path("dvc.yaml")) -> bool:
    """Whether dvc.yaml lists the test CSV as a dep of split (DVC cannot make that dep conditional)."""
    if not dvc_yaml.is_file():
        return True
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")).get("stages", {})
    return any("test_csv" in str(dep) for dep in stages.get("split", {}).get("deps", []))


@stage_entry
def main() -> None:
    params = load_params()
    check_outputs(params, "split")
    if params.data.test_csv and not test_csv_tracked():
        print("warning: data.test_csv is set but not a dep of the split stage in dvc.yaml, so edits to that file "
              "will not rerun the pipeline; uncomment its line under split.deps")
    dataset_dict, summary, notes = make_splits(params.data, params.split)
    for note in notes:
        print(f"note: {note}")
    save_split(dataset_dict, summary, params.paths.split)
    sizes = ", ".join(f"{name} {len(ds)}" for name, ds in dataset_dict.items())
    what = (f"regression labels, train mean {summary['label_statistics']['train']['mean']}"
            if summary.get("task") == "regression" else f"classes {summary['label_names']}")
    print(f"split: {sizes} rows; {what} -> {params.paths.split}")


if __name__ == "__main__":
    main()
