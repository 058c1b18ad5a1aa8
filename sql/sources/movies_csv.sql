-- movies.csv typed for load/movies (the view movies_file; recs.stages.validate.read_source),
-- malformed rows kept aside in reject_errors (see sources/ratings_csv)
select * from movielens_csv(
    $movies_csv,
    {'movieId': 'DOUBLE', 'title': 'VARCHAR', 'genres': 'VARCHAR'},
    rejects := true
)
