-- one row per movie in movies.csv with its links and rating statistics (rating_stats: made by
-- rating_stats.sql from the ratings table, or by recs.stages.ingest from the fast read's columns)
with final as (

    select
        movies.movie_id,
        trim(movies.title) as title,
        movies.genres,
        try_cast(regexp_extract(trim(movies.title), '\((\d{4})(?:[-–]\d{0,4})?\)$', 1) as smallint) as year,
        try_cast(links.imdb_text as bigint) as imdb_id,
        try_cast(links.tmdb_text as bigint) as tmdb_id,
        coalesce(rating_stats.n_ratings, 0) as n_ratings,
        rating_stats.mean_rating
    from movies
    left join links using (movie_id)
    left join rating_stats using (movie_id)
    order by movies.movie_id

)

select * from final
