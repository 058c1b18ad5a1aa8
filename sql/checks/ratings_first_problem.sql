-- failure path only: the first row of ratings.csv that breaks a rule, found by reading the file
-- again as text, in file order. record counts data rows from 1 (blank lines are not rows).
-- suspects applies the cheap numeric rules of load/ratings.sql and ratings_counts to every row;
-- field_problem's wordier diagnosis runs on the suspects only
with source as (

    select * from movielens_csv(
        $ratings_csv,
        {'userId': 'VARCHAR', 'movieId': 'VARCHAR', 'rating': 'VARCHAR', 'timestamp': 'VARCHAR'}
    )

),

numbered as (

    select
        row_number() over () as record,
        *,
        try_cast(userId as double) as user_x,
        try_cast(movieId as double) as movie_x,
        try_cast(rating as double) as rating_x,
        try_cast(timestamp as bigint) as time_x
    from source

),

suspects as (

    select *
    from numbered
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
