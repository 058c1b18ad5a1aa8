-- links.parquet as the view links_file, typed as sources/links_csv. imdbId and tmdbId may be
-- text (digits, imdb's with leading zeros) or integers; both become the text the csv read gives
select
    movieId::double as movieId,
    imdbId::varchar as imdbId,
    tmdbId::varchar as tmdbId
from movielens_parquet($links_parquet)
