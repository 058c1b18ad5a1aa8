-- duckdb's own dense pivot, 0 where a user did not rate a movie: the reference for tests
pivot (select user_id, movie_id::varchar as movie_id, rating from ratings)
on movie_id
using coalesce(first(rating), 0)
group by user_id
order by user_id
