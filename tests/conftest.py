"""Shared test helpers: a tiny model configuration and temporary copies of the repo for real `dvc repro` runs."""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from stages.common.params import deep_update  # noqa: F401  (tests import it from here)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BIN = Path(sys.executable).parent

# Small enough that a whole `dvc repro` takes well under a minute on 2 CPU cores.
TINY = {
    "model": {
        "pretrain_steps": 30,
        "builtin": {"vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                    "intermediate_size": 128, "max_position_embeddings": 128, "pretrain_batch_size": 16},
    },
    "tokenize": {"max_length": 64},
    "train": {"epochs": 4, "batch_size": 16, "learning_rate": 0.002, "warmup_ratio": 0.0},
}


def repo_files() -> list[str]:
    """Tracked files plus untracked-but-not-ignored ones (so tests see uncommitted work too)."""
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.split("\n")
    return [name for name in listing if name and (REPO / name).is_file()]


def env_with_venv() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("TQDM_DISABLE", "1")
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env_with_venv(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def call_main(module: str, *args: str, cwd: Path, stdin: bytes | str = b"") -> subprocess.CompletedProcess:
    """`python -m <module> *args` run in this process: the module's own main() (with its stage_entry wrapper), with
    sys.argv, the working folder and the standard streams swapped, and the exit code taken from SystemExit.

    A subprocess spends seconds importing torch and transformers before main() even starts; a refusal case costs
    milliseconds this way. Every rule keeps at least one real subprocess test for the exit code and the stream
    wiring; the many variants of each rule call this.
    """
    main = importlib.import_module(module).main
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    out, err = io.BytesIO(), io.BytesIO()
    streams = {"stdin": io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"),
               "stdout": io.TextIOWrapper(out, encoding="utf-8", write_through=True),
               "stderr": io.TextIOWrapper(err, encoding="utf-8", write_through=True)}
    saved = {name: getattr(sys, name) for name in streams}, sys.argv
    code = 0
    try:
        for name, stream in streams.items():
            setattr(sys, name, stream)
        sys.argv = [module, *args]
        with contextlib.chdir(cwd):
            main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except Exception:  # what the interpreter would do: the traceback on stderr, exit 1
        traceback.print_exc(file=sys.stderr)
        code = 1
    finally:
        for name, stream in saved[0].items():
            setattr(sys, name, stream)
        sys.argv = saved[1]
    return subprocess.CompletedProcess([module, *args], code, out.getvalue().decode("utf-8"),
                                       err.getvalue().decode("utf-8"))


def write_params(repo: Path, overrides: dict) -> None:
    params_file = repo / "params.yaml"
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    params_file.write_text(yaml.safe_dump(deep_update(params, overrides), allow_unicode=True, sort_keys=False),
                           encoding="utf-8")


def make_pipeline_repo(dest: Path, overrides: dict | None = None) -> Path:
    """A git + DVC repo holding a copy of this project, with `overrides` applied to params.yaml and committed."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in repo_files():
        if name == "dvc.lock":
            continue  # a fresh run, not the committed one
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    write_params(dest, deep_update(TINY, overrides or {}))
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.email", "test@example.com"], dest)
    run(["git", "config", "user.name", "test"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "test repo"], dest)
    return dest


# An unlabelled test file (competition style) rides along in the shared sample run, so the submit stage
# has something to do; one row is empty on purpose.
SAMPLE_TEST_ROWS = [("q-001", "この掃除機は軽くて本当に使いやすいです。"), ("q-002", "届いた商品が壊れていて最悪でした。"),
                    ("q-003", ""), ("q-004", "色は写真のとおりでした。")]


def make_sample_repo(dest: Path, test_csv: Path) -> Path:
    """The tiny pipeline on the bundled sample plus the unlabelled test file: the configuration of `sample_run`."""
    if not test_csv.exists():
        lines = ["id,text"] + [f"{row_id},{text}" for row_id, text in SAMPLE_TEST_ROWS]
        test_csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return make_pipeline_repo(dest, {"data": {"test_csv": str(test_csv)}})


@dataclass
class SampleRun:
    repo: Path       # finished and committed ("baseline run"); treat as read-only, copy it to change it
    stdout: str      # what the first `dvc repro` printed
    test_csv: Path


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> SampleRun:
    """One real `dvc repro` of the tiny pipeline shared by the end-to-end tests (each run costs ~40 s).

    Under pytest-xdist (`make test` runs -n auto) the workers share one run: the first builds it under a file
    lock, the others wait and reuse it (tests only ever copy it)."""
    from filelock import FileLock

    shared = os.environ.get("PYTEST_XDIST_WORKER") is not None
    root = (tmp_path_factory.getbasetemp().parent / "sample_run") if shared else tmp_path_factory.mktemp("sample_run")
    with FileLock(str(root) + ".lock"):
        done = root / "first_repro_stdout.txt"
        if not done.exists():
            if root.exists():
                shutil.rmtree(root)  # a worker died mid-build: start over
            root.mkdir(parents=True)
            repo = make_sample_repo(root / "repo", root / "unlabelled.csv")
            first = run(["dvc", "repro"], repo)
            run(["git", "add", "-A"], repo)
            run(["git", "commit", "-qm", "baseline run"], repo)
            done.write_text(first.stdout, encoding="utf-8")
    return SampleRun(root / "repo", done.read_text(encoding="utf-8"), root / "unlabelled.csv")


def pytest_configure(config):
    """Under pytest-xdist, each worker (and every stage it starts) gets its share of the cores: N workers that each
    start one compute thread per core would oversubscribe them (measured 10x slower on 2 cores)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    # Fixed, not shared (stages/common/threads.py): pipelines of other test runs on this machine would otherwise
    # change a stage's share, and with it the last bits of outputs that tests compare. tests/test_threads.py tests
    # the sharing with registries of its own.
    # The xdist workers inherit the controller's environment: a value this hook set there is replaced by the
    # worker's share, a value the developer set is kept.
    if "JA_TEXTCLF_THREADS" not in os.environ or os.environ.get("JA_TEXTCLF_THREADS_SET_BY") == "conftest":
        os.environ["JA_TEXTCLF_THREADS"] = str(threads)
        os.environ["JA_TEXTCLF_THREADS_SET_BY"] = "conftest"
    if workers > 1:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)


def copy_repo(source: Path, dest: Path) -> Path:
    """A full copy (git history, DVC cache and outputs): `dvc repro` there has nothing to do."""
    shutil.copytree(source, dest, symlinks=True)
    return dest


def need_shared_data(name: str) -> Path:
    path = SHARED_DATA / name / "data.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared/data is only available in development and CI)")
    return path


# Test tiers. `pytest -m "not slow"` is the fast tier (in-process unit tests); `slow` marks every test that
# runs a pipeline (`dvc repro`), stage subprocesses or a training run. Tests that use one of these fixtures
# (directly or through another fixture) build or train a pipeline, so they are slow wherever they live;
# tests without them mark themselves (module `pytestmark` or `@pytest.mark.slow`).
PIPELINE_FIXTURES = {
    "sample_run",  # conftest: one real `dvc repro` of the tiny pipeline
    "tiny_repo",   # tests/test_train.py: `dvc repro tokenize` (builtin pretraining), then training runs
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
