"""The search bench's made-up queries: distinct, seeded, never one of the excluded, and a clear error
(not an endless loop) when the vocabulary cannot give that many."""

from __future__ import annotations

import pytest

from bench.search_http import made_up

TITLES = ["Zenlum wireless black headphones ZE-395", "Norvik red running shoes NV-204"]


def test_made_up_queries_are_distinct_seeded_and_exclude_the_given_ones():
    queries = made_up(TITLES, 2000, seed=2, exclude={"black red"})
    assert len(set(queries)) == 2000 and "black red" not in queries
    assert queries == made_up(TITLES, 2000, seed=2, exclude={"black red"})
    assert all(2 <= len(q.split()) <= 10 for q in queries)


def test_too_few_words_for_the_count_is_an_error():
    with pytest.raises(RuntimeError, match="distinct made-up queries from 1 words"):
        made_up(["solo"], 50, seed=0)
