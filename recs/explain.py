"""Why a neighbour is on a list, beyond the co-watcher count the re-rank already measured."""

from __future__ import annotations


def shared_genres(genres: list[str], other: list[str]) -> list[str]:
    """Genres of `other` that `genres` also has, in `other`'s order."""
    mine = set(genres)
    return [g for g in other if g in mine]
