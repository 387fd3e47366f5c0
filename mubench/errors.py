"""Errors that reach the user: each names what was wrong and where, never a deep traceback."""


class MubenchError(Exception):
    """Base class; the CLI prints these as one clear message and exits with status 2."""


class UnknownNameError(MubenchError, KeyError):
    """A task, scenario, method or profile name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateNameError(MubenchError):
    """Two objects registered under one name."""


class MissingDataError(MubenchError):
    """A data file is absent from every place it was looked for."""


class CorruptDataError(MubenchError):
    """A data file exists but is malformed, truncated or fails its checksum."""


class SplitSizeError(MubenchError, ValueError):
    """A profile's split sizes do not fit the task's data (e.g. a partial copy of a dataset)."""


class SplitMismatchError(MubenchError):
    """A stored split whose indices no longer hash to its recorded id."""


class AccessError(MubenchError):
    """A method asked for data it did not declare."""


class MethodOutputError(MubenchError):
    """A method returned something that is not a valid model of the original architecture."""


class StoreError(MubenchError):
    """The result store cannot be opened or written."""
