-- failure path only: movies.parquet as the view movies_text (see sources/movies_text_csv):
-- movieId as the text of what the file holds (title and genres are text already); record is
-- the row in file order, from 1
select
    file_row_number + 1 as record,
    movieId::varchar as movieId,
    title,
    genres
from movielens_parquet($movies_parquet)
