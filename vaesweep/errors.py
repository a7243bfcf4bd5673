"""The one exception type users see (the CLI prints its message on one line and exits non-zero),
and how a value from a user or a storage is shown in a message, a terminal or a page."""

import difflib
import re
from collections.abc import Iterable


class VaesweepError(Exception):
    """A problem the user can fix (bad input, missing data, unusable storage); never a bug."""


def shown(value: object, limit: int = 80) -> str:
    """A user's value in a one-line message: its repr, cut when long (a line stays a line), with
    its length: a text's own characters (not its quotes'), else its repr's."""
    text = repr(value)
    if len(text) <= limit:
        return text
    length = len(value) if isinstance(value, str) else len(text)
    return f"{text[:limit]}... ({length} characters)"


def first_line(err: BaseException) -> str:
    """An exception's message for a one-line error: its first line (its type if it has none),
    without the "(psycopg.errors.AdminShutdown) " that SQLAlchemy puts before a driver's."""
    if not str(err).strip():
        return type(err).__name__
    line = str(err).strip().splitlines()[0]
    return re.sub(r"^\([\w.]+\) ", "", line) or line


def visible(text: object, keep: str = "") -> str:
    """`text` with every character that a terminal or page would not show as itself (controls,
    bidirectional overrides and isolates, zero-width and other format characters, line
    separators) written as its escape (`\\x1b`, `\\u202e`), so that a name or path from a user or
    a storage can neither drive the terminal (clear it, set its title, swallow output) nor
    reorder a line. The characters in `keep` (e.g. "\\n" for a text of several lines) stay."""
    text = str(text)
    if text.isprintable() and not keep:  # the common case, checked at C speed
        return text
    return "".join(
        ch if ch.isprintable() or ch == " " or ch in keep else ch.encode("unicode_escape").decode()
        for ch in text
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """ "did you mean 'warmup'? " for a near miss among `choices` (difflib's ratio of at least
    0.6), else "": to put before a message's list of choices."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def counted(n: int, noun: str, nouns: str | None = None) -> str:
    """ "1 study", "2 studies": a count with its noun in the number it takes."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"
