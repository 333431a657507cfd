"""The Melon recommender registry: names -> functions that answer Kakao Arena questions.

Every recommender is called as ``fn(train, questions, *, report=None, **args)`` with training and
question ``Playlists`` (``jaxae.data.readers.melon``; JSON records work too) and returns results
records ``[{"id": int, "songs": [100 ints], "tags": [10 strs]}]`` in question order. ``report`` (a
dict) receives counts of what was skipped, filled or fell back. A :class:`Recommender` says what
else it needs: ``needs_embeddings`` (``song_embeddings=``, ``song_ids=``: the song-as-user code of
each song row) and ``uses_song_meta`` (``song_meta=``, may be None).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

from jaxae.errors import ConfigError
from jaxae.recommend.popular import genre_most_popular, most_popular
from jaxae.recommend.song_as_user import song_as_user


@dataclasses.dataclass(frozen=True)
class Recommender:
  """A registered recommender: the function plus what the caller must pass it."""

  fn: Callable[..., list[dict]]
  needs_embeddings: bool = False
  uses_song_meta: bool = False

  def __call__(self, train, questions, **kwargs) -> list[dict]:
    return self.fn(train, questions, **kwargs)

  def arg_names(self) -> list[str]:
    """Keyword arguments a config may set (everything but the data the caller passes itself)."""
    reserved = {"train", "questions", "report", "song_embeddings", "song_ids", "song_meta"}
    return [n for n in inspect.signature(self.fn).parameters if n not in reserved]


RECOMMENDERS: dict[str, Recommender] = {
    "most_popular": Recommender(most_popular),
    "genre_most_popular": Recommender(genre_most_popular, uses_song_meta=True),
    "song_as_user": Recommender(song_as_user, needs_embeddings=True),
}


def get_recommender(name: str) -> Recommender:
  """The recommender named ``name``; ConfigError listing the known names otherwise."""
  if name not in RECOMMENDERS:
    raise ConfigError(f"unknown recommender {name!r}; known: {sorted(RECOMMENDERS)}")
  return RECOMMENDERS[name]


__all__ = ["RECOMMENDERS", "Recommender", "get_recommender", "most_popular",
           "genre_most_popular", "song_as_user"]
