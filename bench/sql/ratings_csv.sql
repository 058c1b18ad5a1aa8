-- ratings_csv(path): ratings.csv typed, the same read_csv options as sql/ratings.sql, for the
-- bench queries (read_floor, rated_movies) to read it one way
create or replace temp macro ratings_csv(path) as table

    select * from read_csv(
        path,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        columns = {'userId': 'BIGINT', 'movieId': 'BIGINT', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}
    )
