-- one row per line of movies.csv, read once with rejected rows kept aside (see ratings.sql);
-- a movieId that is not a whole number >= 0 becomes null, which checks/movies_counts counts
create or replace temp table movies as

with source as (

    select * from movielens_csv(
        $movies_csv,
        {'movieId': 'DOUBLE', 'title': 'VARCHAR', 'genres': 'VARCHAR'},
        rejects := true
    )

),

final as (

    select
        whole_id(movieId) as movie_id,
        title,
        genres
    from source

)

select * from final
