"""The one exception type users see: the CLI prints its message on one line and exits non-zero."""


class VaesweepError(Exception):
    """A problem the user can fix (bad input, missing data, unusable storage); never a bug."""


def shown(value: object, limit: int = 80) -> str:
    """A user's value in a one-line message: its repr, cut when long (a line stays a line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def first_line(err: BaseException) -> str:
    """An exception's message for a one-line error: its first line (its type if it has none)."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
