-- rating_triplets with each (user, movie) pair once: the latest rating (equal times: the higher
-- rating). n_rows is how many ratings.csv rows the pair had. read only when duplicates exist.
-- one bigint group key and one bigint ordering key (time * 16 + half stars, which are 1-10)
-- cost about half of grouping by two columns with a struct ordering key
with triplets as (

    select
        user_index.user_index::bigint * $n_movies + movie_index.movie_index as cell,
        ratings.rating,
        ratings.rated_at,
        -- clamped to +-1e14 s (3 million years) so that * 16 cannot overflow
        greatest(least(ratings.rated_at, 100000000000000), -100000000000000) * 16
            + (ratings.rating * 2)::bigint as recency
    from ratings
    inner join user_index on user_index.user_id = ratings.user_id
    inner join movie_index on movie_index.movie_id = ratings.movie_id

),

latest as (

    select
        cell,
        arg_max(rating, recency) as rating,
        max(rated_at) as rated_at,
        count(*) as n_rows
    from triplets
    group by cell

),

final as (

    select
        (cell // $n_movies)::integer as user_index,
        (cell % $n_movies)::integer as movie_index,
        rating::float as rating,
        rated_at,
        n_rows
    from latest

)

select * from final
