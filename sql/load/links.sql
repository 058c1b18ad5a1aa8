-- one row per line of links.csv (or row of links.parquet), read once from the view links_file
-- with a csv's rejected rows kept aside (see ratings.sql). imdbId and tmdbId are text (a
-- parquet file's integers too): imdbId is written with leading zeros, both may be empty, and
-- checks/links_counts tells an empty id (allowed) from one that is not digits (an error)
create or replace temp table links as

with final as (

    select
        whole_id(movieId) as movie_id,
        nullif(trim(imdbId), '') as imdb_text,
        nullif(trim(tmdbId), '') as tmdb_text
    from links_file

)

select * from final
