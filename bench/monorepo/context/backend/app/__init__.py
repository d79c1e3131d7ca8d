"""The shop's API."""
__version__ = "0.4.2"
