"""Session-9 research script (docs/results.md, session 9): fine-tune more seeds of the train stage from a kept
bench.results copy's base model with the pipeline's own build_trainer, and save each model's weights.

    cd <kept copy> && PYTHONPATH=<project root> python <project root>/bench/research/soup_members.py . <out dir> 45 46 47

PATIENCE=<n> sets train.early_stopping_patience (default 3). A throwaway measurement, not a stage."""
import os, sys, numpy as np, torch, datasets
from pathlib import Path
from safetensors.torch import save_file
from stages.common.params import TrainParams
from stages.modeling.training import build_trainer
torch.set_num_threads(1)
copy, out = Path(sys.argv[1]), Path(sys.argv[2]); seeds = [int(s) for s in sys.argv[3:]]
out.mkdir(parents=True, exist_ok=True)
tok = datasets.load_from_disk(str(copy / "data/tokenized"))
for seed in seeds:
    train = TrainParams.from_project(seed=seed, epochs=10, learning_rate="auto", early_stopping_patience=int(os.environ.get("PATIENCE", "3")))
    trainer = build_trainer(tok, str(copy / "data/base_model"), train, str(out / f"run{seed}"))
    trainer.train()
    save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, str(out / f"seed{seed}.safetensors"))
    print("seed", seed, "done", flush=True)
