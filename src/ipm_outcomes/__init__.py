"""ipm-outcomes: does early referral to Interventional Pain Medicine change return to work and quality of life?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ipm-outcomes")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
