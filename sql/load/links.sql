-- one row per line of links.csv, read once with rejected rows kept aside (see ratings.sql).
-- imdbId and tmdbId stay text: imdbId is written with leading zeros, both may be empty, and
-- checks/links_counts tells an empty id (allowed) from one that is not digits (an error)
create or replace temp table links as

with source as (

    select * from movielens_csv(
        $links_csv,
        {'movieId': 'DOUBLE', 'imdbId': 'VARCHAR', 'tmdbId': 'VARCHAR'},
        rejects := true
    )

),

final as (

    select
        whole_id(movieId) as movie_id,
        nullif(trim(imdbId), '') as imdb_text,
        nullif(trim(tmdbId), '') as tmdb_text
    from source

)

select * from final
