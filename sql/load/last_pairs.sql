-- each user's last two rated movies (by time, then movie id): the nightly quality gate's
-- holdout, "did the list of the movie they watched just before hold the one they watched last"
with last_two as (

    select
        user_id,
        max_by(movie_id, (rated_at, movie_id), 2) as recent
    from ratings
    group by user_id

),

final as (

    select
        user_id,
        recent[2]::bigint as query_id,
        recent[1]::bigint as target_id
    from last_two
    where len(recent) = 2 and recent[1] <> recent[2]
    order by user_id

)

select * from final
