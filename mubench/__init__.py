"""mubench: an open benchmark and leaderboard for machine unlearning."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mubench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
