-- dense 0-based column index of the ratings matrix, in movie_id order;
-- only movies that are rated and listed in movies.csv get a column
create or replace temp table movie_index as

with rated as (

    select distinct movie_id from ratings

),

final as (

    select
        rated.movie_id,
        (row_number() over (order by rated.movie_id) - 1)::integer as movie_index
    from rated
    semi join movies on movies.movie_id = rated.movie_id

)

select * from final
