-- failure path only: the first row of links.csv (or .parquet) with a bad id or a movieId listed
-- before, read again as text in file order (the view links_text, sources/links_text_*);
-- first_record is where a repeated movieId first appeared
with numbered as (

    select
        *,
        min(record) over (partition by try_cast(movieId as double)) as first_record
    from links_text

),

problems as (

    select
        record,
        movieId,
        coalesce(
            field_problem('id', movieId),
            case when record > first_record then 'duplicate' end
        ) as movieId_problem,
        first_record,
        imdbId,
        field_problem('digits', imdbId) as imdbId_problem,
        tmdbId,
        field_problem('digits', tmdbId) as tmdbId_problem
    from numbered

),

final as (

    select *
    from problems
    where movieId_problem is not null
        or imdbId_problem is not null
        or tmdbId_problem is not null
    order by record
    limit 1

)

select * from final
