-- failure path only: the first row of ratings.csv that breaks a rule, found by reading the file
-- again as text, in file order. record counts data rows from 1 (blank lines are not rows)
with source as (

    select * from read_csv(
        $ratings_csv,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        columns = {'userId': 'VARCHAR', 'movieId': 'VARCHAR', 'rating': 'VARCHAR', 'timestamp': 'VARCHAR'}
    )

),

numbered as (

    select
        row_number() over () as record,
        *
    from source

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
    from numbered

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
