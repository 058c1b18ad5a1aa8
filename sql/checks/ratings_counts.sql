-- cheap checks on the loaded ratings, one pass over columns already in memory: n_bad counts
-- rows that break a rule (0 when ratings.csv is fine); ratings_first_problem then names the first
with final as (

    select
        count(*) as n_rows,
        count(*) filter (
            where user_id is null
                or movie_id is null
                or rated_at is null
                or rating is null
                or not (rating between 0.5 and 5.0)
                or rating * 2 <> round(rating * 2)
        ) as n_bad
    from ratings

)

select * from final
