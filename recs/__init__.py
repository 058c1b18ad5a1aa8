"""recs: nightly "because you watched X" lists from a MovieLens ratings log."""

__version__ = "0.1.0"
