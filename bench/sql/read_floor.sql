-- the floor of reading ratings.csv: parse every column once, ids as bigint
with source as (

    select * from movielens_csv(
        $ratings_csv,
        {'userId': 'BIGINT', 'movieId': 'BIGINT', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}
    )

),

final as (

    select
        count(*) as n_ratings,
        sum(userId) as sum_user_id,
        sum(movieId) as sum_movie_id,
        sum(rating) as sum_rating,
        sum(timestamp) as sum_timestamp
    from source

)

select * from final
