-- each user's last $n rating events in watch order (time, then movie id): enough for the
-- quality gate's next-watch pairs without fetching every event. latest rating per pair.
with ratings as (

    select * from ratings

),

movies as (

    select movie_id from movies

),

ratings_latest as (

    select
        user_id,
        movie_id,
        arg_max(rating, (rated_at, rating)) as rating,
        max(rated_at) as rated_at
    from ratings
    group by user_id, movie_id

),

listed as (

    select ratings_latest.*
    from ratings_latest
    semi join movies on movies.movie_id = ratings_latest.movie_id

),

final as (

    select
        user_id,
        movie_id,
        rating::float as rating,
        rated_at
    from listed
    qualify row_number() over (
        partition by user_id order by rated_at desc, movie_id desc
    ) <= $n
    order by user_id, rated_at, movie_id

)

select * from final
