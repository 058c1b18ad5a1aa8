-- failure path only: links.parquet as the view links_text (see sources/links_text_csv): values
-- as the text of what the file holds; record is the row in file order, from 1
select
    file_row_number + 1 as record,
    movieId::varchar as movieId,
    imdbId::varchar as imdbId,
    tmdbId::varchar as tmdbId
from movielens_parquet($links_parquet)
