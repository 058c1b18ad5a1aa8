-- cheap checks on the loaded links: rows with a bad movieId or an id that is not digits, and
-- movieIds listed twice (empty imdbId/tmdbId are allowed)
with final as (

    select
        count(*) as n_rows,
        count(*) filter (
            where movie_id is null
                or not regexp_full_match(coalesce(imdb_text, '0'), '[0-9]{1,15}')
                or not regexp_full_match(coalesce(tmdb_text, '0'), '[0-9]{1,15}')
        ) as n_bad,
        count(movie_id) - count(distinct movie_id) as n_duplicates
    from links

)

select * from final
