-- failure path only: the first row of ratings.csv (or .parquet) that breaks a rule, found by
-- reading the file again as text, in file order: the view ratings_text (sources/ratings_text_csv
-- or sources/ratings_text_parquet) gives each row's record (data rows from 1) and its fields.
-- suspects applies the cheap numeric rules of load/ratings.sql and ratings_counts to every row;
-- field_problem's wordier diagnosis runs on the suspects only
with parsed as (

    select
        *,
        try_cast(userId as double) as user_x,
        try_cast(movieId as double) as movie_x,
        try_cast(rating as double) as rating_x,
        try_cast(timestamp as bigint) as time_x
    from ratings_text

),

suspects as (

    select *
    from parsed
    where not coalesce(
        whole_id(user_x) is not null
        and whole_id(movie_x) is not null
        and rating_x between 0.5 and 5.0 and rating_x * 2 = round(rating_x * 2)
        and time_x is not null,
        false
    )

),

problems as (

    select
        record,
        userId,
        field_problem('id', userId) as userId_problem,
        movieId,
        field_problem('id', movieId) as movieId_problem,
        rating,
        field_problem('rating', rating) as rating_problem,
        timestamp,
        field_problem('timestamp', timestamp) as timestamp_problem
    from suspects

),

final as (

    select *
    from problems
    where userId_problem is not null
        or movieId_problem is not null
        or rating_problem is not null
        or timestamp_problem is not null
    order by record
    limit 1

)

select * from final
