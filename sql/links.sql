-- imdbId stays text here: links.csv writes it with leading zeros
create or replace temp table links as

with source as (

    select * from read_csv(
        $links_csv,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        columns = {'movieId': 'BIGINT', 'imdbId': 'VARCHAR', 'tmdbId': 'BIGINT'}
    )

),

final as (

    select
        movieId as movie_id,
        imdbId as imdb_text,
        tmdbId as tmdb_id
    from source

)

select * from final
