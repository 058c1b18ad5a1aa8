-- ratings per movie id and their mean (every ratings.csv row counts, repeats included), for
-- movie_table. recs.stages.ingest's fast path computes the same table in numpy instead
create or replace temp table rating_stats as

with final as (

    select
        movie_id,
        count(*)::integer as n_ratings,
        avg(rating)::float as mean_rating
    from ratings
    group by movie_id

)

select * from final
