-- every (user, movie) pair once, with its latest rating and time, in each user's watch order:
-- by time, equal times by movie id. only movies listed in movies.csv count, like the pivot.
with ratings_latest as (

    select
        user_id,
        movie_id,
        arg_max(rating, (rated_at, rating)) as rating,
        max(rated_at) as rated_at
    from ratings
    group by user_id, movie_id

),

final as (

    select
        ratings_latest.user_id,
        ratings_latest.movie_id,
        ratings_latest.rating::float as rating,
        ratings_latest.rated_at
    from ratings_latest
    semi join movies on movies.movie_id = ratings_latest.movie_id
    order by ratings_latest.user_id, ratings_latest.rated_at, ratings_latest.movie_id

)

select * from final
