-- one row per rating in ratings.csv (or .parquet), typed, read once from the view ratings_file
-- (sources/ratings_csv or sources/ratings_parquet, picked by recs.stages.validate.read_source).
-- a csv's malformed rows go to reject_errors instead of failing the scan, and
-- recs.stages.validate turns the first one into a one-line error.
-- an id that is not a whole number >= 0 becomes null here (whole_id), so checks/ratings_counts
-- counts it and checks/ratings_first_problem names it.
-- duplicates are resolved later (rating_triplets_latest), only when there are any.
create or replace temp table ratings as

with final as (

    select
        whole_id(userId) as user_id,
        whole_id(movieId) as movie_id,
        rating,
        timestamp as rated_at
    from ratings_file

)

select * from final
