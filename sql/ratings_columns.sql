-- the fast read of ratings.csv for recs.ingest.load_dataset: the same scan as ratings.sql (same
-- read_csv options, so the same rows are rejected), returned as narrow columns instead of a
-- table. ok marks a row that passes every rule of ratings.sql and check_ratings with both ids
-- below 2^31 (int32); any other row gets user_id -1, and one such row (or one rejected row)
-- sends recs.ingest to the full load (load_tables), which names the first problem
with source as (

    select * from read_csv(
        $ratings_csv,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        store_rejects = true, rejects_limit = 100,
        columns = {'userId': 'DOUBLE', 'movieId': 'DOUBLE', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}
    )

),

checked as (

    select
        *,
        coalesce(
            userId >= 0 and userId < 2147483648 and userId = trunc(userId)
            and movieId >= 0 and movieId < 2147483648 and movieId = trunc(movieId)
            and rating between 0.5 and 5.0 and rating * 2 = round(rating * 2)
            and timestamp is not null,
            false
        ) as ok
    from source

),

final as (

    select
        case when ok then userId::integer else -1 end as user_id,
        case when ok then movieId::integer else -1 end as movie_id,
        case when ok then (rating * 2)::utinyint else 0 end as half_stars,
        case when ok then timestamp else 0 end as rated_at
    from checked

)

select * from final
