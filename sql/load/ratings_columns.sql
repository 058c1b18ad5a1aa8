-- the fast read of ratings.csv (or .parquet) for recs.stages.ingest.load_dataset: the same scan
-- as ratings.sql (the view ratings_file, so the same rows are rejected), returned as narrow
-- columns instead of a table. ok marks a row that passes every rule of ratings.sql and
-- checks/ratings_counts with both ids below 2^31 (int32); any other row gets user_id -1, and one
-- such row (or one rejected row) sends recs.stages.ingest to the full load (load_tables), which
-- names the first problem
with checked as (

    select
        *,
        coalesce(
            whole_id(userId) < 2147483648
            and whole_id(movieId) < 2147483648
            and rating between 0.5 and 5.0 and rating * 2 = round(rating * 2)
            and timestamp is not null,
            false
        ) as ok
    from ratings_file

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
