-- ml-100k u.item (Latin-1, '|'-separated, no header) -> MovieLens-latest movies.csv (UTF-8);
-- the 19 genre flags become a '|'-joined list in u.genre order, named as ml-latest names them
-- ("Children's" -> "Children"); the "unknown" flag is no genre, so such movies get
-- "(no genres listed)" like ml-latest's movies without genres
copy (

    with items as (

        select * from read_csv(
            $u_item,
            header = false, auto_detect = false, delim = '|', quote = '', escape = '',
            encoding = 'latin-1',
            columns = {
                'movie_id': 'BIGINT', 'title': 'VARCHAR', 'release_date': 'VARCHAR',
                'video_release_date': 'VARCHAR', 'imdb_url': 'VARCHAR',
                'g00': 'TINYINT', 'g01': 'TINYINT', 'g02': 'TINYINT', 'g03': 'TINYINT',
                'g04': 'TINYINT', 'g05': 'TINYINT', 'g06': 'TINYINT', 'g07': 'TINYINT',
                'g08': 'TINYINT', 'g09': 'TINYINT', 'g10': 'TINYINT', 'g11': 'TINYINT',
                'g12': 'TINYINT', 'g13': 'TINYINT', 'g14': 'TINYINT', 'g15': 'TINYINT',
                'g16': 'TINYINT', 'g17': 'TINYINT', 'g18': 'TINYINT'
            }
        )

    ),

    genre_names as (

        select * from (values
            ('g01', 'Action'), ('g02', 'Adventure'), ('g03', 'Animation'), ('g04', 'Children'),
            ('g05', 'Comedy'), ('g06', 'Crime'), ('g07', 'Documentary'), ('g08', 'Drama'),
            ('g09', 'Fantasy'), ('g10', 'Film-Noir'), ('g11', 'Horror'), ('g12', 'Musical'),
            ('g13', 'Mystery'), ('g14', 'Romance'), ('g15', 'Sci-Fi'), ('g16', 'Thriller'),
            ('g17', 'War'), ('g18', 'Western')
        ) as t (flag_column, genre)

    ),

    flags as (

        unpivot (select movie_id, columns('^g[0-9]{2}$') from items)
        on columns('^g[0-9]{2}$')
        into name flag_column value flag

    ),

    movie_genres as (

        select
            flags.movie_id,
            string_agg(genre_names.genre, '|' order by genre_names.flag_column) as genres
        from flags
        inner join genre_names on genre_names.flag_column = flags.flag_column
        where flags.flag = 1
        group by flags.movie_id

    ),

    final as (

        select
            items.movie_id as movieId,
            items.title,
            coalesce(movie_genres.genres, '(no genres listed)') as genres
        from items
        left join movie_genres on movie_genres.movie_id = items.movie_id
        order by movieId

    )

    select * from final

) to $movies_csv (format csv, header true, delimiter ',', quote '"', escape '"')
