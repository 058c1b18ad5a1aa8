-- how many distinct movies and users are rated: the size of the job's embedding matrix
with source as (

    select * from read_csv(
        $ratings_csv,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        columns = {'userId': 'BIGINT', 'movieId': 'BIGINT', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}
    )

),

final as (

    select
        count(distinct movieId) as n_movies,
        count(distinct userId) as n_users
    from source

)

select * from final
