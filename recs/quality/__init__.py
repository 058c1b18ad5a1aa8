"""Measured quality: splits, metrics (the nightly gate needs only this one), baselines, and the
`recs evaluate` runner. May import the stages; no stage imports quality."""
