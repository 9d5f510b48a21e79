"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class ReslabError(Exception):
    """Base class for every mistake a user can make (bad name, bad config, bad data)."""


class UnknownModelError(ReslabError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(ReslabError, ValueError):
    """An option value that cannot work (impossible depth, unknown variant, ...)."""


class DataError(ReslabError):
    """Missing, truncated or corrupt data, or a failed download/checksum."""
