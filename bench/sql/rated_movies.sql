-- how many distinct movies and users are rated: the size of the job's embedding matrix
with source as (

    select * from ratings_csv($ratings_csv)

),

final as (

    select
        count(distinct movieId) as n_movies,
        count(distinct userId) as n_users
    from source

)

select * from final
