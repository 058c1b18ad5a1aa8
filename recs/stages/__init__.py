"""The pipeline stages, one module each: source, ingest, validate, embed, neighbors, rerank, the
recipe that chains those two, write, store, publish, history. They import recs.core and each
other, never recs.quality or recs.tools."""
