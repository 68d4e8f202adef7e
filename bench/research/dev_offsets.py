"""Session-9 research script (docs/results.md, session 9). Run from the project root:

    python bench/research/dev_offsets.py <kept bench.results copy> [...]

It reads the copy's data/split, data/model and DVC cache directly; a throwaway measurement, not a stage."""
import sys, numpy as np, pandas as pd, torch, datasets
from transformers import AutoTokenizer, AutoModelForSequenceClassification
from sklearn.metrics import f1_score
torch.set_num_threads(1)
run = sys.argv[1]
tok = AutoTokenizer.from_pretrained(run + "/data/model"); model = AutoModelForSequenceClassification.from_pretrained(run + "/data/model").eval()
split = datasets.load_from_disk(run + "/data/split")
def logits(texts):
    out = []
    for i in range(0, len(texts), 64):
        b = tok(texts[i:i+64], truncation=True, max_length=128, padding=True, return_tensors="pt")
        with torch.no_grad(): out.append(model(**b).logits.float().numpy())
    return np.concatenate(out)
names = split["train"].features["label"].names
dev = logits(split["dev"]["text"]); va = logits(split["valid"]["text"])
yd = np.array(split["dev"]["label"]); yv = np.array(split["valid"]["label"])
print("valid argmax", f1_score(yv, va.argmax(1), average="macro"), "dev argmax", f1_score(yd, dev.argmax(1), average="macro"))
# per-class additive offsets, coordinate search on dev
K = dev.shape[1]; off = np.zeros(K); grid = np.linspace(-3, 3, 61)
for it in range(3):
    for k in range(1, K):
        best = None
        for g in grid:
            o = off.copy(); o[k] = g
            s = f1_score(yd, (dev + o).argmax(1), average="macro")
            if best is None or s > best[0] + 1e-9 or (abs(s-best[0])<1e-9 and abs(g) < abs(best[1])): best = (s, g)
        off[k] = best[1]
print("offsets", off, "dev", f1_score(yd, (dev+off).argmax(1), average="macro"), "valid tuned", f1_score(yv, (va+off).argmax(1), average="macro"))
