-- links.csv typed for load/links (the view links_file; recs.stages.validate.read_source),
-- malformed rows kept aside in reject_errors (see sources/ratings_csv). imdbId and tmdbId stay
-- text: imdbId is written with leading zeros, and both may be empty
select * from movielens_csv(
    $links_csv,
    {'movieId': 'DOUBLE', 'imdbId': 'VARCHAR', 'tmdbId': 'VARCHAR'},
    rejects := true
)
