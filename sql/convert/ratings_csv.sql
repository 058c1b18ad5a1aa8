-- ml-100k u.data (tab-separated, no header) -> MovieLens-latest ratings.csv, sorted by user then movie
copy (

    with source as (

        select * from read_csv(
            $u_data,
            header = false, auto_detect = false, delim = '\t', quote = '', escape = '',
            columns = {'user': 'BIGINT', 'item': 'BIGINT', 'rating': 'DOUBLE', 'rated_at': 'BIGINT'}
        )

    ),

    final as (

        select
            user as userId,
            item as movieId,
            rating,
            rated_at as timestamp
        from source
        order by userId, movieId, timestamp

    )

    select * from final

) to $ratings_csv (format csv, header true, delimiter ',', quote '"', escape '"')
