-- ratings.csv typed for the loads (load/ratings, load/ratings_columns read it as the view
-- ratings_file; recs.stages.validate.read_source). ids and ratings as doubles (whole_id checks
-- them), timestamps as bigint; malformed rows go to reject_errors instead of failing the scan
select * from movielens_csv(
    $ratings_csv,
    {'userId': 'DOUBLE', 'movieId': 'DOUBLE', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'},
    rejects := true
)
