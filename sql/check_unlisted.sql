-- ratings whose movie is missing from movies.csv: how many distinct movies (run only when
-- building the matrix dropped some ratings)
with ratings as (

    select movie_id from ratings

),

movies as (

    select movie_id from movies

),

final as (

    select count(distinct ratings.movie_id) as unlisted_movies
    from ratings
    anti join movies on movies.movie_id = ratings.movie_id

)

select * from final
