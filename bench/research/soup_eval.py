"""Session-9 research script (docs/results.md, session 9). Run from the project root:

    python bench/research/soup_eval.py <kept bench.results copy> [...]

It reads the copy's data/split, data/model and DVC cache directly; a throwaway measurement, not a stage."""
import json, sys, glob, itertools, numpy as np, torch, datasets
from safetensors.torch import load_file
from transformers import AutoTokenizer, AutoModelForSequenceClassification
from sklearn.metrics import f1_score
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
run, extra = sys.argv[1], sys.argv[2]; cache = run + "/.dvc/cache/files/md5/"
def obj(md5): return cache + md5[:2] + "/" + md5[2:]
states = {}
for d in glob.glob(cache + "*/*.dir"):
    m = {e["relpath"]: e["md5"] for e in json.load(open(d))}
    if "model.safetensors" in m and "config.json" in m:
        cfg = json.load(open(obj(m["config.json"])))
        if "id2label" in cfg and cfg.get("architectures", [""])[0].endswith("SequenceClassification"):
            states["c" + m["model.safetensors"][:6]] = load_file(obj(m["model.safetensors"]))
for f in sorted(glob.glob(extra + "/seed*.safetensors")):
    states[f.split("/")[-1].split(".")[0]] = load_file(f)
tok = AutoTokenizer.from_pretrained(run + "/data/model")
model = AutoModelForSequenceClassification.from_pretrained(run + "/data/model").eval()
split = datasets.load_from_disk(run + "/data/split")
def probs(sd, texts):
    model.load_state_dict(sd, strict=False); out = []
    for i in range(0, len(texts), 128):
        b = tok(texts[i:i+128], truncation=True, max_length=128, padding=True, return_tensors="pt")
        with torch.no_grad(): out.append(torch.softmax(model(**b).logits.float(), -1).numpy())
    return np.concatenate(out)
yd, yv = np.array(split["dev"]["label"]), np.array(split["valid"]["label"])
f1 = lambda y, p: round(f1_score(y, p.argmax(1), average="macro"), 4)
names = list(states); P = {}
for n in names:
    P[n] = (probs(states[n], split["dev"]["text"]), probs(states[n], split["valid"]["text"]))
    print(n, "dev", f1(yd, P[n][0]), "valid", f1(yv, P[n][1]), flush=True)
def soup(members): return {k: sum(states[m][k].float() for m in members) / len(members) for k in states[members[0]]}
print("mean single valid", np.mean([f1(yv, P[n][1]) for n in names]))
for k in (2, 3, len(names)):
    scores = []
    for combo in list(itertools.combinations(names, k))[:10]:
        sd = soup(list(combo)); scores.append(f1(yv, probs(sd, split["valid"]["text"])))
    print(f"uniform soup of {k}: mean valid over {len(scores)} combos", round(np.mean(scores), 4), scores, flush=True)
print("prob ensemble all", f1(yv, np.mean([P[n][1] for n in names], 0)))
order = sorted(names, key=lambda n: -f1(yd, P[n][0])); chosen = [order[0]]; best = f1(yd, P[order[0]][0])
for n in order[1:]:
    s = f1(yd, probs(soup(chosen + [n]), split["dev"]["text"]))
    if s >= best: chosen.append(n); best = s
print("greedy soup", chosen, "dev", best, "valid", f1(yv, probs(soup(chosen), split["valid"]["text"])))
