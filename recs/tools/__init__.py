"""Developer tools: synthetic data (synth) and the local demo server (serve)."""
