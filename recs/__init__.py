"""recs: nightly "because you watched X" lists from a MovieLens ratings log."""

import os

# LanceDB's Rust core reads LANCEDB_LOG once, when lancedb is imported: quiet its WARN lines
# (deprecation notices about its own defaults) unless the user asked for them.
os.environ.setdefault("LANCEDB_LOG", "error")

__version__ = "0.1.0"
