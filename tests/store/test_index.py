"""The store's per-resource index: key order without sorting, label selection equal to a full
scan, and nothing left behind by objects that are gone."""

from __future__ import annotations

import random

from procorch.api.selectors import parse_label_selector
from procorch.store.base import Stored
from procorch.store.index import ResourceIndex


def stored(name: str, labels: dict[str, str], revision: int) -> Stored:
    obj = {"metadata": {"name": name, "labels": labels}}
    return Stored(object=obj, raw=b"{}", revision=revision)


def test_lists_are_in_key_order_and_selections_equal_a_full_scan_through_random_churn() -> None:
    rng = random.Random(7)
    index = ResourceIndex()
    live: dict[tuple[str, str], Stored] = {}
    selectors = [
        "app=a1",
        "app in (a1,a2),tier=t0",
        "app=a3,tier!=t1",
        "tier in (t0,t2),app notin (a0)",
        "app=a4,tier=t1,extra",
        "app=nope",
    ]
    for revision in range(1, 4000):
        ns, name = f"ns{rng.randrange(3)}", f"o{rng.randrange(300)}"
        if (ns, name) in live and rng.random() < 0.3:
            index.remove(ns, name)
            del live[(ns, name)]
        else:
            labels = {"app": f"a{rng.randrange(5)}", "tier": f"t{rng.randrange(3)}"}
            if rng.random() < 0.2:
                labels["extra"] = "yes"
            item = stored(name, labels, revision)
            index.put(ns, name, item)
            live[(ns, name)] = item
        if revision % 500:
            continue
        expected_all = [live[k] for k in sorted(live)]
        assert index.list() == expected_all
        assert index.list("ns1") == [live[k] for k in sorted(live) if k[0] == "ns1"]
        for text in selectors:
            selector = parse_label_selector(text)
            terms = selector.indexable_terms()
            got = [
                s
                for s in index.list(None, terms)
                if selector.matches(s.object["metadata"]["labels"])
            ]
            want = [s for s in expected_all if selector.matches(s.object["metadata"]["labels"])]
            assert got == want, text
        assert index.count() == len(live)


def test_an_update_that_changes_labels_moves_the_object_between_selections() -> None:
    index = ResourceIndex()
    index.put("default", "web", stored("web", {"app": "old"}, 1))
    index.put("default", "web", stored("web", {"app": "new"}, 2))
    assert index.list("default", {"app": {"old"}}) == []
    assert [s.revision for s in index.list("default", {"app": {"new"}})] == [2]


def test_removing_every_object_leaves_no_postings_names_or_namespaces() -> None:
    index = ResourceIndex()
    for i in range(100):
        index.put(f"ns{i % 4}", f"o{i}", stored(f"o{i}", {"app": f"a{i}", "k": "v"}, i + 1))
    for i in range(100):
        index.remove(f"ns{i % 4}", f"o{i}")
    assert index.count() == 0
    assert index.namespaces() == set()
    assert index._postings == {} and index._runs == {} and index._objects == {}
