-- ratings.parquet as the view ratings_file, with the columns and types of sources/ratings_csv.
-- the column types were checked first (recs.stages.validate.check_parquet), so these casts
-- cannot fail: ids and ratings become doubles as the csv read gives them, timestamps unix seconds
select
    userId::double as userId,
    movieId::double as movieId,
    rating::double as rating,
    unix_seconds(timestamp) as timestamp
from movielens_parquet($ratings_parquet)
