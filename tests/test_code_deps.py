"""dvc.yaml lists, for every stage, the code that stage runs: editing any of it reruns the stage."""
from __future__ import annotations

import ast
from pathlib import Path

import yaml

from stages.common.codedeps import code_files

REPO = Path(__file__).resolve().parents[1]


def trivial_init(path: str) -> bool:
    """A package __init__.py holding only its docstring runs no code worth a dep."""
    body = ast.parse((REPO / path).read_text(encoding="utf-8")).body
    return path.endswith("__init__.py") and all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def uncovered_code(dvc_yaml: Path) -> dict[str, list[str]]:
    """Per stage: the project files its module runs that no dep (file or directory) in dvc.yaml covers."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    missing = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # a foreach stage's definition
        module = stage["cmd"].split("python -m ", 1)[1].split()[0]
        deps = [str(d) for d in stage.get("deps", []) if str(d).startswith("stages")]
        gaps = [f for f in code_files(module) if not trivial_init(f)
                and not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
        if gaps:
            missing[name] = gaps
    return missing


def test_every_stage_depends_on_all_the_code_it_imports():
    missing = uncovered_code(REPO / "dvc.yaml")
    assert not missing, "add these lines to the stage's deps in dvc.yaml: " + "; ".join(
        f"{stage}: {', '.join(files)}" for stage, files in missing.items())


def test_no_stage_lists_code_it_does_not_run():
    """Extra code deps would rerun a stage for edits that cannot change its output."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    extra = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # a foreach stage's definition
        runs = code_files(stage["cmd"].split("python -m ", 1)[1].split()[0])
        deps = [str(d) for d in stage.get("deps", []) if str(d).startswith("stages")]
        extra[name] = [d for d in deps if not (REPO / d).exists()
                       or not any(f == d or f.startswith(d.rstrip("/") + "/") for f in runs)]
    assert not any(extra.values()), {k: v for k, v in extra.items() if v}


def test_deleting_a_dep_line_is_caught(tmp_path):
    """The check above can fail: drop one library dep of train from a copy of dvc.yaml."""
    text = (REPO / "dvc.yaml").read_text(encoding="utf-8")
    line = "      - stages/modeling/checkpointing.py\n"
    assert line in text
    broken = tmp_path / "dvc.yaml"
    broken.write_text(text.replace(line, "", 1), encoding="utf-8")
    missing = uncovered_code(broken)
    assert "stages/modeling/checkpointing.py" in missing.get("train", [])


def test_imports_inside_functions_count(tmp_path):
    """base_model imports the builtin model lazily; it must still be a dep of base_model."""
    assert "stages/modeling/builtin.py" in code_files("stages.base_model")
