-- movies.parquet as the view movies_file, typed as sources/movies_csv (column types checked
-- first: title and genres are text)
select
    movieId::double as movieId,
    title,
    genres
from movielens_parquet($movies_parquet)
