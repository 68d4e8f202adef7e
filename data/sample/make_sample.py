"""Write the bundled synthetic sample (data/sample/train.csv): short Japanese product reviews.

The sentences are generated from the templates below (no real data), so the README run works anywhere.
Three classes: positive / negative / neutral. Run `python data/sample/make_sample.py` to regenerate;
the output is deterministic.

Like every real export, it has label noise: 7 rows of each class (4.7%) carry the next class's label, so the
class counts stay 150 each and no model (TF-IDF included) can score a perfect 1.0 on the valid split, which
would make the first report a user reads meaningless.
"""
import csv
import random
from pathlib import Path

PRODUCTS = ["このスマートフォン", "新しいノートパソコン", "駅前のカフェ", "このホテル", "あのレストラン", "今回の掃除機",
            "近所のパン屋", "このイヤホン", "買ったばかりの自転車", "オンライン英会話", "この炊飯器", "新作のゲーム",
            "ワイヤレスキーボード", "この美容院", "配達サービス", "社員食堂", "図書館のアプリ", "この旅館"]
ASPECTS = ["画面", "味", "接客", "価格", "デザイン", "音質", "使い心地", "サポート", "部屋", "操作性", "品揃え", "雰囲気"]
POSITIVE = ["がとても良くて、大満足です。", "が素晴らしく、また利用したいと思います。", "が期待以上で感動しました。",
            "が最高で、友人にも勧めました。", "が快適で、毎日楽しく使っています。", "が丁寧で、安心できました。",
            "に満足しています。買って本当に良かった。", "が気に入りました。文句なしです。"]
NEGATIVE = ["がひどくて、二度と使いたくありません。", "が最悪で、がっかりしました。", "が悪く、返品を考えています。",
            "に不満があり、おすすめできません。", "が期待外れで、お金の無駄でした。", "が雑で、とても残念です。",
            "のせいで、毎日イライラします。", "が壊れやすく、困っています。"]
NEUTRAL = ["は普通だと思います。", "について、特に感想はありません。", "は値段相応といったところです。",
           "は前のモデルとほぼ同じです。", "の説明は公式サイトに載っています。", "は来月変更されるそうです。",
           "は人によって評価が分かれるようです。", "はまだ確認していません。"]
OPENERS = ["", "正直なところ、", "先週から使っていますが、", "家族と行きましたが、", "改めて思うのですが、", "結論から言うと、"]


LABELS = ("positive", "negative", "neutral")


def add_label_noise(rows: list[tuple[str, str]], per_class: int, rng: random.Random) -> list[tuple[str, str]]:
    """Give `per_class` rows of each class the next class's label (a rotation keeps the class counts)."""
    noisy = list(rows)
    for index, label in enumerate(LABELS):
        wrong = LABELS[(index + 1) % len(LABELS)]
        chosen = rng.sample([i for i, (_, gold) in enumerate(rows) if gold == label], per_class)
        for i in chosen:
            noisy[i] = (rows[i][0], wrong)
    return noisy


def make_rows(seed: int = 0, per_class: int = 150, noisy_per_class: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows, seen = [], set()
    for label, endings in (("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)):
        count = 0
        while count < per_class:
            text = f"{rng.choice(OPENERS)}{rng.choice(PRODUCTS)}の{rng.choice(ASPECTS)}{rng.choice(endings)}"
            if text in seen:
                continue
            seen.add(text)
            rows.append((text, label))
            count += 1
    rng.shuffle(rows)
    return add_label_noise(rows, noisy_per_class, rng)


if __name__ == "__main__":
    out = Path(__file__).with_name("train.csv")
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(make_rows())
    print(f"wrote {out}")
