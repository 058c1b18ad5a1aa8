-- cheap checks on the loaded movies: rows with a bad movieId, and movieIds listed twice
with final as (

    select
        count(*) as n_rows,
        count(*) filter (where movie_id is null) as n_bad,
        count(movie_id) - count(distinct movie_id) as n_duplicates
    from movies

)

select * from final
