-- failure path only: ratings.parquet as the view ratings_text (see sources/ratings_text_csv).
-- each value is the text of what the file holds (timestamps as unix seconds) so field_problem
-- names it as in a csv; record is the row in file order, from 1
select
    file_row_number + 1 as record,
    userId::varchar as userId,
    movieId::varchar as movieId,
    rating::varchar as rating,
    unix_seconds(timestamp)::varchar as timestamp
from movielens_parquet($ratings_parquet)
