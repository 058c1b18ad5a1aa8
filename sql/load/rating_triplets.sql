-- the users x movies pivot as sparse (row, column, value) triplets: zeros are never stored.
-- one triplet per ratings.csv row whose movie is listed in movies.csv (other rows are dropped).
-- a (user, movie) pair rated twice gives two triplets here: grouping 25M rows to rule that out
-- costs seconds, so recs.stages.ingest detects it for free (building the csr matrix merges the pair)
-- and only then reads rating_triplets_latest instead
with final as (

    select
        user_index.user_index,
        movie_index.movie_index,
        ratings.rating::float as rating,
        ratings.rated_at
    from ratings
    inner join user_index on user_index.user_id = ratings.user_id
    inner join movie_index on movie_index.movie_id = ratings.movie_id

)

select * from final
