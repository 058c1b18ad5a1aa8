-- one row per rating in ratings.csv, typed; duplicates are resolved later by rating_triplets
create or replace temp table ratings as

with source as (

    select * from read_csv(
        $ratings_csv,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        columns = {'userId': 'BIGINT', 'movieId': 'BIGINT', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}
    )

),

final as (

    select
        userId as user_id,
        movieId as movie_id,
        rating,
        timestamp as rated_at
    from source

)

select * from final
