-- the users x movies pivot as sparse (row, column, value) triplets: zeros are never stored.
-- a (user, movie) pair rated twice keeps its latest rating (ties: the higher rating)
with ratings_latest as (

    select
        user_id,
        movie_id,
        arg_max(rating, (rated_at, rating)) as rating
    from ratings
    group by user_id, movie_id

),

final as (

    select
        user_index.user_index,
        movie_index.movie_index,
        ratings_latest.rating::float as rating
    from ratings_latest
    join user_index using (user_id)
    join movie_index using (movie_id)

)

select * from final
