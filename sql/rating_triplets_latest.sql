-- rating_triplets with each (user, movie) pair once: the latest rating (equal times: the higher
-- rating). n_rows is how many ratings.csv rows the pair had. read only when duplicates exist
with ratings as (

    select * from ratings

),

triplets as (

    select
        user_index.user_index,
        movie_index.movie_index,
        ratings.rating,
        ratings.rated_at
    from ratings
    inner join user_index on user_index.user_id = ratings.user_id
    inner join movie_index on movie_index.movie_id = ratings.movie_id

),

final as (

    select
        user_index,
        movie_index,
        arg_max(rating, (rated_at, rating))::float as rating,
        count(*) as n_rows
    from triplets
    group by user_index, movie_index

)

select * from final
