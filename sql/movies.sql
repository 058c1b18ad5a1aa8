-- one row per line of movies.csv, read once with rejected rows kept aside (see ratings.sql);
-- a movieId that is not a whole number >= 0 becomes null, which check_movies counts
create or replace temp table movies as

with source as (

    select * from read_csv(
        $movies_csv,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        store_rejects = true, rejects_limit = 100,
        columns = {'movieId': 'DOUBLE', 'title': 'VARCHAR', 'genres': 'VARCHAR'}
    )

),

final as (

    select
        case when movieId >= 0 and movieId < 9e15 and movieId = trunc(movieId)
            then movieId::bigint end as movie_id,
        title,
        genres
    from source

)

select * from final
