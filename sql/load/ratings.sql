-- one row per rating in ratings.csv, typed, read once: malformed rows go to reject_errors instead
-- of failing the scan, and recs.stages.validate turns the first one into a one-line error.
-- an id that is not a whole number >= 0 becomes null here (whole_id), so checks/ratings_counts
-- counts it and checks/ratings_first_problem names it.
-- duplicates are resolved later (rating_triplets_latest), only when there are any.
create or replace temp table ratings as

with source as (

    select * from movielens_csv(
        $ratings_csv,
        {'userId': 'DOUBLE', 'movieId': 'DOUBLE', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'},
        rejects := true
    )

),

final as (

    select
        whole_id(userId) as user_id,
        whole_id(movieId) as movie_id,
        rating,
        timestamp as rated_at
    from source

)

select * from final
