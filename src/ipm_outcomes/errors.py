"""Errors meant for people: one line that says what is wrong, where, and what to do."""


class IpmError(Exception):
    """A problem the user can act on; the CLI prints its message as one line and exits non-zero."""


class DatabaseInUseError(IpmError):
    """Another process holds the DuckDB file open for writing."""


class ValidationFailed(IpmError):
    """An extract broke one or more fatal rules of the input contract.

    ``problems`` holds every problem found (fatal and warnings), so a caller can print them all at once.
    """

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or []
