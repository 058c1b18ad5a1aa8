-- one row per movie in movies.csv (or .parquet), read once from the view movies_file with a
-- csv's rejected rows kept aside (see ratings.sql);
-- a movieId that is not a whole number >= 0 becomes null, which checks/movies_counts counts
create or replace temp table movies as

with final as (

    select
        whole_id(movieId) as movie_id,
        title,
        genres
    from movies_file

)

select * from final
