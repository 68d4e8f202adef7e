"""check_paths stage: refuse unsafe `paths.*` values before `dvc repro` deletes anything.

DVC removes a stage's declared outputs just before it runs that stage's command, so a `paths.eval` pointed at
a folder of the user's files would be emptied before the evaluate stage could object. Every stage depends on
this stage's stamp file, so it runs first whenever `paths.*` or an input location changes, and a refusal
(`error: paths.<key>: ...`, exit 2) stops `dvc repro` before any output is touched. Each stage still checks
its own outputs when run directly (`python -m stages.<name>`).
"""
from __future__ import annotations

from stages.common.errors import stage_entry
from stages.common.outputs import write_text
from stages.common.params import load_params
from stages.common.paths import check_all_outputs

STAMP = "data/.paths_checked"  # constant content: a recheck never reruns the stages that depend on it
STAMP_TEXT = "paths.* checked by stages/check_paths.py before any stage ran\n"


@stage_entry
def main() -> None:
    params = load_params()
    check_all_outputs(params)
    write_text(STAMP, STAMP_TEXT)
    print(f"check_paths: every paths.* value is a location of its own inside the project -> {STAMP}")


if __name__ == "__main__":
    main()
