-- one row per rating in ratings.csv, typed, read once: malformed rows (bad quoting, wrong field
-- count, text where a number belongs, bytes that are not utf-8) go to reject_errors instead of
-- failing the scan, and recs.validate turns the first one into a one-line error.
-- ids are read as double because duckdb's bigint cast rounds '2.5' to 3: an id that is not a
-- whole number >= 0 becomes null here, so check_ratings counts it and check_ratings_rows names it.
-- duplicates are resolved later (rating_triplets_latest), only when there are any.
create or replace temp table ratings as

with source as (

    select * from read_csv(
        $ratings_csv,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        store_rejects = true, rejects_limit = 100,
        columns = {'userId': 'DOUBLE', 'movieId': 'DOUBLE', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}
    )

),

final as (

    select
        case when userId >= 0 and userId < 9e15 and userId = trunc(userId)
            then userId::bigint end as user_id,
        case when movieId >= 0 and movieId < 9e15 and movieId = trunc(movieId)
            then movieId::bigint end as movie_id,
        rating,
        timestamp as rated_at
    from source

)

select * from final
