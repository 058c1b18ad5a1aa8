-- the floor of reading ratings.csv: parse every column once (same options as sql/ratings.sql)
with source as (

    select * from read_csv(
        $ratings_csv,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        columns = {'userId': 'BIGINT', 'movieId': 'BIGINT', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}
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
