"""Session-9 research script (docs/results.md, session 9). Run from the project root:

    python bench/research/chive_swem.py <kept bench.results copy> [...]

It reads the copy's data/split, data/model and DVC cache directly; a throwaway measurement, not a stage."""
import sys, numpy as np, datasets, fugashi
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from stages.modeling.word_vectors import load_chive, WordForms
from stages.dataset.japanese import mecab_options
wv = load_chive(); forms = WordForms(); tagger = fugashi.GenericTagger(mecab_options())
cache = {}
def vec(w):
    if w not in cache:
        r = None
        for f in forms(w):
            r = wv.row(f)
            if r is not None: break
        cache[w] = r
    return cache[w]
def emb(t):
    rows = [vec(n.surface) for n in tagger(t)]
    rows = [r for r in rows if r is not None]
    if not rows: return np.zeros(300, np.float32), np.zeros(300, np.float32)
    m = wv.vectors[rows]
    return m.mean(0), m.max(0)
for name in sys.argv[1:]:
    d = datasets.load_from_disk(name + "/data/split")
    tr, va = d["train"], d["valid"]
    X = np.stack([np.concatenate(emb(t)) for t in tr["text"]]); Xv = np.stack([np.concatenate(emb(t)) for t in va["text"]])
    for C in [0.1, 1, 10]:
        for sl, nm in [(slice(0,300),"mean"), (slice(0,600),"mean+max")]:
            clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(X[:, sl], tr["label"])
            print(name, nm, C, round(f1_score(va["label"], clf.predict(Xv[:, sl]), average="macro"), 3))
