"""The Melon recommender registry: names -> functions that answer Kakao Arena questions.

Every recommender is called as ``fn(train, questions, *, report=None, **args)`` with training and
question ``Playlists`` (``jaxae.data.readers.melon``; JSON records work too) and returns results
records ``[{"id": int, "songs": [100 ints], "tags": [10 strs]}]`` in question order. ``report`` (a
dict) receives counts of what was skipped, filled or fell back. A :class:`Recommender` says what
else it needs: ``needs_embeddings`` (``song_embeddings=``, ``song_ids=``: the song-as-user code of
each song row), ``uses_song_meta`` (``song_meta=``, may be None), ``needs_scores``
(``score_top_k=``, ``score_song_ids=``: the model being evaluated ranks its columns, see
``jaxae.recommend.hybrid.model_top_k``) and ``setup`` (run once per evaluator as
``setup(dataset, split, **setup_args)``; its keyword arguments come from the config and it returns
keyword arguments for the function, e.g. seed A's content AE loaded from ``content_workdir``).
A function with a ``topk_group`` argument ranks on the device with :func:`jaxae.topk.top_k` and is
passed the evaluator's ``config.eval.topk_group`` (``takes_topk_group``).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

from jaxae.errors import ConfigError
from jaxae.recommend.hybrid import hybrid, load_content
from jaxae.recommend.popular import genre_most_popular, most_popular
from jaxae.recommend.song_as_user import song_as_user

# Arguments the caller (the Melon evaluator) passes itself; a config can never set them.
RESERVED_ARGS = frozenset({"train", "questions", "report", "song_embeddings", "song_ids",
                           "song_meta", "score_top_k", "score_song_ids", "topk_group"})


@dataclasses.dataclass(frozen=True)
class Recommender:
  """A registered recommender: the function plus what the caller must pass it."""

  fn: Callable[..., list[dict]]
  needs_embeddings: bool = False
  uses_song_meta: bool = False
  needs_scores: bool = False
  setup: Callable[..., dict] | None = None
  setup_provides: tuple[str, ...] = ()   # the function arguments ``setup`` returns

  def __call__(self, train, questions, **kwargs) -> list[dict]:
    return self.fn(train, questions, **kwargs)

  @property
  def depends_on_model(self) -> bool:
    """Whether the answers depend on the evaluated model's parameters (else: a fixed baseline)."""
    return self.needs_embeddings or self.needs_scores

  @property
  def takes_topk_group(self) -> bool:
    """Whether the function ranks with :func:`jaxae.topk.top_k` (passed ``topk_group=``)."""
    return "topk_group" in inspect.signature(self.fn).parameters

  def setup_arg_names(self) -> list[str]:
    """Config arguments that go to ``setup`` rather than to the function."""
    if self.setup is None:
      return []
    return [n for n in inspect.signature(self.setup).parameters if n not in ("dataset", "split")]

  def arg_names(self) -> list[str]:
    """Keyword arguments a config may set (everything but the data the caller passes itself)."""
    hidden = RESERVED_ARGS | set(self.setup_provides)
    return ([n for n in inspect.signature(self.fn).parameters if n not in hidden]
            + self.setup_arg_names())


RECOMMENDERS: dict[str, Recommender] = {
    "most_popular": Recommender(most_popular),
    "genre_most_popular": Recommender(genre_most_popular, uses_song_meta=True),
    "song_as_user": Recommender(song_as_user, needs_embeddings=True),
    "hybrid": Recommender(hybrid, needs_scores=True, setup=load_content,
                          setup_provides=("content",)),
}


def get_recommender(name: str) -> Recommender:
  """The recommender named ``name``; ConfigError listing the known names otherwise."""
  if name not in RECOMMENDERS:
    raise ConfigError(f"unknown recommender {name!r}; known: {sorted(RECOMMENDERS)}")
  return RECOMMENDERS[name]


__all__ = ["RECOMMENDERS", "Recommender", "get_recommender", "most_popular",
           "genre_most_popular", "song_as_user", "hybrid"]
