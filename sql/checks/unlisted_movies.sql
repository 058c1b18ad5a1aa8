-- ratings whose movie is missing from movies.csv: how many distinct movies (run only when
-- building the matrix dropped some ratings)
with final as (

    select count(distinct ratings.movie_id) as unlisted_movies
    from ratings
    anti join movies on movies.movie_id = ratings.movie_id

)

select * from final
