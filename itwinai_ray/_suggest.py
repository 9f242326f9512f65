"""Close-match suggestions for error messages ("Did you mean 'ddp'?")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def did_you_mean(word: Any, choices: Iterable[Any], cutoff: float = 0.6,
                 prefix: bool = False) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices``, or an empty string.

    With ``prefix``, a choice that starts with ``word`` (or that ``word`` starts with) wins
    over spelling distance: ``asha`` for ``ash``.
    """
    names = [str(c) for c in choices]
    word = str(word)
    match = [n for n in names if n.startswith(word) or word.startswith(n)] if prefix else []
    match = match or difflib.get_close_matches(word, names, n=1, cutoff=cutoff)
    return f" Did you mean '{match[0]}'?" if match else ""
