-- the floor of reading ratings.csv: parse every column once (read by ratings_csv.sql)
with source as (

    select * from ratings_csv($ratings_csv)

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
