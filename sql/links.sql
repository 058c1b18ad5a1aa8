-- one row per line of links.csv, read once with rejected rows kept aside (see ratings.sql).
-- imdbId and tmdbId stay text: imdbId is written with leading zeros, both may be empty, and
-- check_links tells an empty id (allowed) from one that is not digits (an error)
create or replace temp table links as

with source as (

    select * from read_csv(
        $links_csv,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        store_rejects = true, rejects_limit = 100,
        columns = {'movieId': 'DOUBLE', 'imdbId': 'VARCHAR', 'tmdbId': 'VARCHAR'}
    )

),

final as (

    select
        case when movieId >= 0 and movieId < 9e15 and movieId = trunc(movieId)
            then movieId::bigint end as movie_id,
        nullif(trim(imdbId), '') as imdb_text,
        nullif(trim(tmdbId), '') as tmdb_text
    from source

)

select * from final
