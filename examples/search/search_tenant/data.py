"""Seeded product-search simulator: catalog, queries with intents, graded judgments, click logs.

Catalog   items with a brand, a category, a colour and a category-specific attribute; the title
          says all four in the catalog's own words ("Norvik wireless black headphones NV-204").
Queries   three intents, as in real query logs:
            navigational  a brand and a category           "norvik headphones"
            category      a category, often by a synonym   "earbuds", "best earbuds"
            attribute     colour and/or attribute + category "black wireless earbuds"
          A third of the category words are synonyms the titles never use, so exact-term (BM25)
          retrieval misses items that dense (embedding) retrieval finds.
Judgments graded relevance 0-4 from the intent (what matches), for a pool of candidates per query
          (every strong match, near misses from the same category and brand, random items), with
          a little annotator noise. One judging time per query, spread over `days` days.
Clicks    each query is shown `impressions` times; the production ranker orders its candidates
          by popularity (plus noise), so position and relevance are confounded. A position-based
          click model: P(click) = P(examine position k) x P(click | examined, relevance), with
          P(examine k) = (1 / k) ** eta. Raw click-through rates are biased towards the top
          positions; inverse propensity weighting (search_tenant.features) removes that.

Everything is drawn from one numpy Generator in a fixed order: the same arguments give the same
tables. The default size (4,000 items, 800 queries) takes well under a second.

Tables written (parquet): the judgments (the tenant's main table, one partition per day) and the
auxiliary tables under `tables/` (catalog, queries, clicks), read by `mlplatform.data.ingest`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# category -> (title noun, query synonyms never used in titles, attribute values, price median)
CATEGORIES: dict[str, tuple[str, list[str], list[str], float]] = {
    "headphones": ("headphones", ["earbuds", "earphones", "headset"], ["wireless", "noise-cancelling", "over-ear", "sport"], 80),
    "laptop": ("laptop", ["notebook", "ultrabook", "chromebook"], ["gaming", "lightweight", "touchscreen", "business"], 900),
    "running-shoes": ("running shoes", ["sneakers", "trainers", "joggers"], ["trail", "cushioned", "waterproof", "lightweight"], 110),
    "coffee-maker": ("coffee maker", ["espresso machine", "coffee machine", "brewer"], ["programmable", "single-serve", "stainless", "compact"], 120),
    "backpack": ("backpack", ["rucksack", "daypack", "knapsack"], ["waterproof", "hiking", "laptop", "travel"], 60),
    "smartphone": ("smartphone", ["cell phone", "mobile phone", "handset"], ["5g", "dual-sim", "rugged", "compact"], 600),
    "watch": ("watch", ["timepiece", "wristwatch", "smartwatch"], ["digital", "analog", "waterproof", "solar"], 150),
    "t-shirt": ("t-shirt", ["tee", "top", "shirt"], ["cotton", "slim-fit", "oversized", "organic"], 20),
    "desk-lamp": ("desk lamp", ["reading light", "table lamp", "task light"], ["led", "dimmable", "clip-on", "wireless"], 35),
    "blender": ("blender", ["smoothie maker", "food processor", "mixer"], ["high-speed", "portable", "glass", "quiet"], 70),
    "jacket": ("jacket", ["coat", "parka", "anorak"], ["waterproof", "insulated", "lightweight", "hooded"], 130),
    "camera": ("camera", ["camcorder", "dslr", "mirrorless"], ["4k", "compact", "waterproof", "instant"], 500),
}
COLORS = ["black", "white", "red", "blue", "green", "grey", "silver", "pink", "yellow", "brown"]
_SYLLABLES = ["nor", "vik", "zen", "tro", "ka", "lum", "ax", "del", "qui", "ro", "sol", "tem", "var", "bo", "fin", "ly"]
INTENTS = ["navigational", "category", "attribute"]
INTENT_SHARES = [0.25, 0.35, 0.40]
# P(click | examined, relevance 0..4) of the position-based click model
CLICK_GIVEN_EXAMINED = np.array([0.03, 0.10, 0.30, 0.60, 0.90])
SHOWN_POSITIONS = 10
START = pd.Timestamp("2024-03-01", tz="UTC")


def _brands(rng: np.random.Generator, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        k = rng.integers(2, 4)
        names.add("".join(rng.choice(_SYLLABLES, size=k)).capitalize())
    return sorted(names)


def make_catalog(rng: np.random.Generator, items: int, brands: int) -> pd.DataFrame:
    brand_names = _brands(rng, brands)
    cats = list(CATEGORIES)
    # each brand sells in 2-4 categories: brand queries then have several categories to tell apart
    brand_cats = {b: rng.choice(len(cats), size=rng.integers(2, 5), replace=False) for b in brand_names}
    b_idx = rng.integers(0, brands, size=items)
    rows = []
    pop = rng.pareto(1.2, size=items) + 1.0  # heavy tail: a few items get most of the traffic
    for i in range(items):
        brand = brand_names[b_idx[i]]
        cat = cats[rng.choice(brand_cats[brand])]
        noun, _, attrs, median = CATEGORIES[cat]
        color = COLORS[rng.integers(len(COLORS))]
        attr = attrs[rng.integers(len(attrs))]
        code = f"{brand[:2].upper()}-{rng.integers(100, 999)}"
        rows.append((i, f"{brand} {attr} {color} {noun} {code}", cat, brand, color, attr,
                     round(float(median * rng.lognormal(0, 0.35)), 2)))
    df = pd.DataFrame(rows, columns=["item_id", "title", "category", "brand", "color", "attribute", "price"])
    df["popularity"] = np.round(pop / pop.max(), 6)
    df["listed_at"] = START - pd.Timedelta(days=30)
    return df


def make_queries(rng: np.random.Generator, catalog: pd.DataFrame, queries: int, days: int) -> pd.DataFrame:
    cats = list(CATEGORIES)
    rows = []
    for q in range(queries):
        intent = INTENTS[rng.choice(3, p=INTENT_SHARES)]
        target = catalog.iloc[rng.integers(len(catalog))]  # queries follow what the catalog holds
        cat = target["category"]
        noun, synonyms, _, _ = CATEGORIES[cat]
        word = synonyms[rng.integers(len(synonyms))] if rng.random() < 0.35 else noun
        brand = color = attr = None
        if intent == "navigational":
            brand = target["brand"]
            text = f"{brand.lower()} {word}"
        elif intent == "category":
            prefix = ["", "", "best ", "cheap ", "new "][rng.integers(5)]
            text = f"{prefix}{word}"
        else:
            mode = rng.integers(3)  # colour only, attribute only, or both
            color = target["color"] if mode in (0, 2) else None
            attr = target["attribute"] if mode in (1, 2) else None
            text = " ".join(p for p in (color, attr, word) if p)
        assert cat in cats
        asked = START + pd.Timedelta(seconds=int(rng.uniform(0, days * 86400)))  # whole seconds: the offline store keeps microseconds
        rows.append((q, text, intent, cat, brand, color, attr, asked))
    return pd.DataFrame(rows, columns=["query_id", "query", "intent", "target_category", "target_brand",
                                       "target_color", "target_attribute", "asked_at"])


def true_relevance(query: pd.Series, catalog: pd.DataFrame) -> np.ndarray:
    """Graded relevance (0-4) of every catalog item for one query, from the query's intent."""
    cat_ok = (catalog["category"] == query["target_category"]).to_numpy()
    rel = np.zeros(len(catalog), dtype=np.int64)
    if query["intent"] == "navigational":
        brand_ok = (catalog["brand"] == query["target_brand"]).to_numpy()
        rel[cat_ok] = 1
        rel[brand_ok & ~cat_ok] = 1
        rel[brand_ok & cat_ok] = 4
    elif query["intent"] == "category":
        # any item of the category answers it; the ones people actually buy answer it better
        pop = catalog["popularity"].to_numpy()
        cut = np.quantile(pop[cat_ok], 0.75) if cat_ok.any() else 1.0
        rel[cat_ok] = 2
        rel[cat_ok & (pop >= cut)] = 3
    else:
        wanted = [(c, query[f"target_{c}"]) for c in ("color", "attribute") if query[f"target_{c}"] is not None]
        hits = sum((catalog[c] == v).to_numpy().astype(np.int64) for c, v in wanted)
        full = hits == len(wanted)
        rel[cat_ok] = 1
        rel[cat_ok & (hits > 0)] = 2
        rel[cat_ok & full] = 4
    return rel


def make_judgments(rng: np.random.Generator, catalog: pd.DataFrame, queries: pd.DataFrame,
                   pool: int, noise: float) -> pd.DataFrame:
    """A pool of judged candidates per query: strong matches, near misses, random items."""
    frames = []
    n = len(catalog)
    for _, q in queries.iterrows():
        rel = true_relevance(q, catalog)
        strong = np.flatnonzero(rel >= 2)
        weak = np.flatnonzero(rel == 1)
        take_strong = rng.choice(strong, size=min(len(strong), pool // 2), replace=False) if len(strong) else strong
        take_weak = rng.choice(weak, size=min(len(weak), pool // 4), replace=False) if len(weak) else weak
        chosen = np.unique(np.concatenate([take_strong, take_weak, rng.integers(0, n, size=pool // 4)]))
        graded = rel[chosen].copy()
        flip = rng.random(len(chosen)) < noise  # annotators disagree now and then, by one grade
        graded[flip] = np.clip(graded[flip] + rng.choice([-1, 1], size=flip.sum()), 0, 4)
        frames.append(pd.DataFrame({"query_id": q["query_id"], "query": q["query"], "item_id": chosen,
                                    "relevance": graded, "judged_at": q["asked_at"]}))
    return pd.concat(frames, ignore_index=True)


def make_clicks(rng: np.random.Generator, catalog: pd.DataFrame, queries: pd.DataFrame, judgments: pd.DataFrame,
                impressions: int, eta: float, unjudged: int = 10) -> pd.DataFrame:
    """Impressions of the production ranker (popularity order) with position-biased clicks.

    The production ranker shows the judged candidates and `unjudged` more items of the query's
    category that nobody judged: clicks are the only labels those pairs get."""
    pop = catalog["popularity"].to_numpy()
    examine = (1.0 / np.arange(1, SHOWN_POSITIONS + 1)) ** eta
    qrows = queries.set_index("query_id")
    asked = qrows["asked_at"]
    category = catalog["category"].to_numpy()
    cols: dict[str, list] = {k: [] for k in ("impression_id", "query_id", "item_id", "position", "clicked", "shown_at")}
    imp = 0
    for qid, group in judgments.groupby("query_id", sort=True):
        truth = true_relevance(qrows.loc[qid], catalog)
        same = np.setdiff1d(np.flatnonzero(category == qrows.loc[qid, "target_category"]), group["item_id"].to_numpy())
        extra = rng.choice(same, size=min(unjudged, len(same)), replace=False) if len(same) else same
        items = np.concatenate([group["item_id"].to_numpy(), extra])
        rel = np.concatenate([group["relevance"].to_numpy(), truth[extra]])
        for s in range(impressions):
            noisy = np.log(pop[items]) + rng.normal(0, 1.0, size=len(items))
            order = np.argsort(-noisy, kind="stable")[:SHOWN_POSITIONS]
            k = len(order)
            clicked = rng.random(k) < examine[:k] * CLICK_GIVEN_EXAMINED[rel[order]]
            shown = asked[qid] + pd.Timedelta(seconds=int(rng.uniform(0, 7 * 86400)))
            cols["impression_id"] += [imp] * k
            cols["query_id"] += [qid] * k
            cols["item_id"] += items[order].tolist()
            cols["position"] += list(range(1, k + 1))
            cols["clicked"] += clicked.astype(np.int64).tolist()
            cols["shown_at"] += [shown] * k
            imp += 1
    return pd.DataFrame(cols)


def simulate(items: int = 4000, queries: int = 800, brands: int = 60, days: int = 30, pool: int = 40,
             impressions: int = 6, eta: float = 1.0, noise: float = 0.05, seed: int = 42) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    catalog = make_catalog(rng, items, brands)
    qs = make_queries(rng, catalog, queries, days)
    judgments = make_judgments(rng, catalog, qs, pool, noise)
    clicks = make_clicks(rng, catalog, qs, judgments, impressions, eta)
    return {"judgments": judgments, "catalog": catalog, "queries": qs, "clicks": clicks}


def generate(out_dir: Path | str, **kwargs) -> dict[str, int]:
    """The tenant's data generator (data.generator): judgments partitioned by day, the other tables
    under `tables/<name>/part-0.parquet`. Returns rows per table."""
    out_dir = Path(out_dir)
    tables = simulate(**kwargs)
    judgments = tables.pop("judgments")
    day = judgments["judged_at"].dt.strftime("%Y-%m-%d")
    for d, part in judgments.groupby(day, sort=True):
        path = out_dir / f"date={d}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(path, index=False)
    for name, df in tables.items():
        path = out_dir / "tables" / name / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(path, index=False)
    return {"judgments": len(judgments), **{k: len(v) for k, v in tables.items()}}
