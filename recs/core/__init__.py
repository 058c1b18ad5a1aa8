"""Shared helpers every room may use: settings, errors, the SQL loader, ranking, and the typed
arrays that travel between stages. Imports nothing else from recs."""
