"""The one exception type users see: the CLI prints its message on one line and exits non-zero."""


class VaesweepError(Exception):
    """A problem the user can fix (bad input, missing data, unusable storage); never a bug."""
