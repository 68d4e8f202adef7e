"""The README and docs/ say only what is true: generated params reference, existing paths, commands that run,
and Troubleshooting messages that the code still prints. Fast: no pipeline runs."""
from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from functools import lru_cache

import pytest

from stages.common.params import params_reference_markdown
from tests.conftest import REPO, env_with_venv

DOCS = [REPO / "README.md", REPO / "README.ja.md", *sorted((REPO / "docs").glob("*.md"))]
PARAMS_DOC = REPO / "docs" / "params.md"


def test_params_reference_is_the_generated_one():
    assert PARAMS_DOC.read_text(encoding="utf-8") == params_reference_markdown(), (
        "docs/params.md is stale: run `python -m stages.common.params --markdown > docs/params.md`")


def test_params_reference_lists_every_key_with_its_value():
    text = params_reference_markdown()
    assert "| `train.epochs` | float | > 0 | `10` | Training epochs. |" in text
    assert "| `train.learning_rate` | `auto` or float > 0 |  | `auto` | Peak learning rate; auto: 0.0002 for" in text
    assert "| `embed.pooling` | `cls` \\| `mean` \\| `pooler` |  | `cls` |" in text
    assert "| `data.test_csv` | str or `null` |  | `null` |" in text
    assert text.count("\n| `") == sum(1 for _ in leaf_keys())


def leaf_keys():
    import yaml

    def walk(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    return walk(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8")))


# --- Troubleshooting: each message's fixed words still occur in the code under stages/ ----------------------

def troubleshooting_messages() -> list[str]:
    section = (REPO / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [re.match(r"\| `(.+?)` \|", row).group(1) for row in rows]


@lru_cache(maxsize=1)
def message_templates() -> list[list[str]]:
    """Every string literal and f-string under stages/, as its constant parts (an f-string's {...} are the gaps)."""
    templates = []
    for path in sorted((REPO / "stages").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                parts, current = [], ""
                for value in node.values:
                    if isinstance(value, ast.Constant):
                        current += str(value.value)
                    else:
                        parts.append(current)
                        current = ""
                parts.append(current)
                templates.append(parts)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                templates.append([node.value])
    return templates


def fixed_words_matched(message: str, constants: list[str]) -> int:
    """Characters of `message` that consecutive constant parts of one template explain (0 if none fit).

    A run of constants c_i..c_j must appear in order in the message, with anything (a formatted value) between
    them. The message may begin inside c_i (with a suffix of it) and end inside c_j (with a prefix of it): a
    message quoted in part."""
    if not any(len(c) >= 4 and c in message for c in constants) and not any(message in c for c in constants):
        return 0
    best = 0
    for i in range(len(constants)):
        for j in range(i, len(constants)):
            run = constants[i:j + 1]
            heads = [(re.escape(run[0]), len(run[0]))] + [
                ("^" + re.escape(run[0][k:]), len(run[0]) - k) for k in range(1, len(run[0]))
                if message.startswith(run[0][k:])][:1]
            for head, head_size in heads:
                if i == j:
                    pattern, size = head, head_size
                    if re.search(pattern, message, re.DOTALL):
                        best = max(best, size)
                    continue
                middle = "".join(re.escape(c) + "(?:.*?)" for c in run[1:-1])
                tails = [(re.escape(run[-1]), len(run[-1]))] + [
                    (re.escape(run[-1][:k]) + "$", k) for k in range(len(run[-1]) - 1, 0, -1)
                    if message.endswith(run[-1][:k])][:1]
                for tail, tail_size in tails:
                    size = head_size + sum(len(c) for c in run[1:-1]) + tail_size
                    if size > best and re.search(head + "(?:.*?)" + middle + tail, message, re.DOTALL):
                        best = size
    if any(message in c for c in constants):
        best = max(best, len(message))
    return best


def test_troubleshooting_table_has_rows():
    assert len(troubleshooting_messages()) >= 20


@pytest.mark.parametrize("message", troubleshooting_messages())
def test_troubleshooting_message_still_exists_in_stages_code(message):
    matched = max(fixed_words_matched(message, t) for t in message_templates())
    assert matched >= 20 and matched >= 0.25 * len(message), (
        f"no message under stages/ matches this docs/troubleshooting.md row (best {matched} fixed characters): "
        f"{message}")


def test_message_matching_rejects_a_reworded_message():
    real = "data/x.csv: column 'text' not found (set data.text_column); columns are: 'body', 'label'"
    best = max(fixed_words_matched(real, t) for t in message_templates())
    assert best >= 0.25 * len(real)
    reworded = "data/x.csv: there is no column called 'text'; please check data.text_column ('body', 'label')"
    assert max(fixed_words_matched(reworded, t) for t in message_templates()) < 20


# --- Paths and commands named in the docs ---------------------------------------------------------------------

PATH_PREFIXES = ("stages/", "bench/", "tests/", "docs/", "data/sample/")


def documented_paths() -> set[str]:
    found = set()
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"`([^`\s]+)`|\]\(([^)\s]+)\)", text):
            path = (match.group(1) or match.group(2)).rstrip(".,:;")
            if match.group(2) and doc.parent.name == "docs" and not path.startswith(PATH_PREFIXES):
                path = f"docs/{path}"  # a link relative to docs/
            if path.startswith(PATH_PREFIXES) and not re.search(r"[<>*{}]", path):
                found.add(path)
    return found


def test_every_documented_code_path_exists():
    paths = documented_paths()
    assert "stages/modeling/training.py" in paths and "docs/params.md" in paths  # the scan finds paths at all
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert missing == [], f"README/docs name paths that do not exist (layout changed?): {missing}"


def documented_commands() -> list[list[str]]:
    """`python -m <module> ...` and `ja-textclf-predict ...` lines of the ```bash blocks, as argv lists."""
    commands = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL):
            for line in block.splitlines():
                line = line.split("  #")[0].split(" > ")[0].split(" && ")[0]
                line = line.split("| ", 1)[-1].strip()
                if line.startswith("ja-textclf-predict"):
                    line = "python -m stages.predict" + line[len("ja-textclf-predict"):]
                if line.startswith("python -m "):
                    commands.append(shlex.split(line))
    return commands


@lru_cache(maxsize=None)
def module_help(module: str) -> str:
    """What `python -m <module> --help` prints, run in this process: the same `__main__` code path, without
    paying a fresh interpreter's torch/transformers imports per command (seconds each on 2 cores)."""
    argv, environ = sys.argv, dict(os.environ)
    imported = sys.modules.pop(module, None)  # run it as __main__, not beside an imported copy (runpy warns)
    out = io.StringIO()
    try:
        sys.argv = [module, "--help"]
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = argv
        if imported is not None:
            sys.modules[module] = imported
        os.environ.clear()
        os.environ.update(environ)
    assert exit_info.value.code in (0, None), f"python -m {module} --help exited with {exit_info.value.code}"
    return out.getvalue()


def test_documented_commands_run_and_their_options_exist():
    commands = documented_commands()
    modules = {argv[2] for argv in commands}
    assert {"bench.embed", "bench.train", "bench.results", "stages.predict"} <= modules, modules
    for argv in commands:
        help_text = module_help(argv[2])
        for option in (arg.split("=")[0] for arg in argv[3:] if arg.startswith("--")):
            assert option in help_text, f"{' '.join(argv)}: {option} is not an option of python -m {argv[2]}"


def test_params_command_prints_the_reference():
    result = subprocess.run([sys.executable, "-m", "stages.common.params", "--markdown"], cwd=REPO,
                            env=env_with_venv(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == PARAMS_DOC.read_text(encoding="utf-8")


def make_dry_run(*targets: str) -> str:
    result = subprocess.run(["make", "-n", *targets], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_documented_make_targets_exist():
    text = "\n".join(doc.read_text(encoding="utf-8") for doc in DOCS)
    targets = sorted(set(re.findall(r"(?:^|`)make ([a-z][a-z-]*)", text, re.MULTILINE)))
    assert {"repro", "test", "test-fast", "bench", "results"} <= set(targets), targets
    make_dry_run(*targets)


def test_make_test_runs_both_tiers_and_test_fast_only_the_fast_one():
    test_lines = [line for line in make_dry_run("test").splitlines() if "pytest" in line]
    fast_lines = [line for line in make_dry_run("test-fast").splitlines() if "pytest" in line]
    assert len(test_lines) == 1 and "slow" not in test_lines[0]
    assert len(fast_lines) == 1 and '-m "not slow"' in fast_lines[0]


def test_make_bench_runs_the_benchmarks_as_modules():
    """`python bench/embed.py` cannot import `bench.model`; the Makefile must run `python -m bench.<name>`."""
    lines = [line for line in make_dry_run("bench", "results").splitlines() if "bench" in line and "pip" not in line]
    modules = [re.search(r"python -m (bench\.\w+)", line) for line in lines]
    assert len(lines) == 3 and all(modules), lines
    for module in modules:
        module_help(module.group(1))
