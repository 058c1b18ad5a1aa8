create or replace temp table movies as

with source as (

    select * from read_csv(
        $movies_csv,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        columns = {'movieId': 'BIGINT', 'title': 'VARCHAR', 'genres': 'VARCHAR'}
    )

),

final as (

    select
        movieId as movie_id,
        title,
        genres
    from source

)

select * from final
