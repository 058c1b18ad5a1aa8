-- failure path only: the first row of movies.csv (or .parquet) with a bad movieId or one listed
-- before, read again as text in file order (the view movies_text, sources/movies_text_*);
-- first_record is where a repeated movieId first appeared
with numbered as (

    select
        *,
        min(record) over (partition by try_cast(movieId as double)) as first_record
    from movies_text

),

problems as (

    select
        record,
        movieId,
        coalesce(
            field_problem('id', movieId),
            case when record > first_record then 'duplicate' end
        ) as movieId_problem,
        first_record
    from numbered

),

final as (

    select *
    from problems
    where movieId_problem is not null
    order by record
    limit 1

)

select * from final
