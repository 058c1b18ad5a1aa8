-- ml-100k has no IMDb or TMDb ids (only search URLs), so links.csv lists every converted movie
-- with both ids empty; it reads the movies.csv this conversion has just written
copy (

    with movies as (

        select * from movielens_csv(
            $movies_csv,
            {'movieId': 'BIGINT', 'title': 'VARCHAR', 'genres': 'VARCHAR'}
        )

    ),

    final as (

        select
            movieId,
            null::varchar as imdbId,
            null::bigint as tmdbId
        from movies
        order by movieId

    )

    select * from final

) to $links_csv (format csv, header true, delimiter ',', quote '"', escape '"')
