"""`python -m recs` is the `recs` command."""

from recs.cli import main

main()
