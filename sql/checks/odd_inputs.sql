-- odd but usable inputs, counted for the report (small tables only: movies, links, movie_index).
-- movies_unrated needs movie_index, so this runs after the ratings matrix is built
with listed_links as (

    select links.*
    from links
    semi join movies on movies.movie_id = links.movie_id

),

final as (

    select
        (select count(*) from movies anti join links on links.movie_id = movies.movie_id)
            as movies_without_links,
        (select count(*) from links anti join movies on movies.movie_id = links.movie_id)
            as links_without_movies,
        (select count(*) from listed_links where imdb_text is null) as links_without_imdb,
        (select count(*) from listed_links where tmdb_text is null) as links_without_tmdb,
        (select count(*) from movies) - (select count(*) from movie_index) as movies_unrated

)

select * from final
