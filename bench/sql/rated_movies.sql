-- how many distinct movies and users are rated: the size of the job's embedding matrix
with source as (

    select * from movielens_csv(
        $ratings_csv,
        {'userId': 'BIGINT', 'movieId': 'BIGINT', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}
    )

),

final as (

    select
        count(distinct movieId) as n_movies,
        count(distinct userId) as n_users
    from source

)

select * from final
