-- failure path only: movies.csv read again as text, for checks/movies_first_problem (the view
-- movies_text). record counts data rows from 1 in file order
select
    row_number() over () as record,
    *
from movielens_csv(
    $movies_csv,
    {'movieId': 'VARCHAR', 'title': 'VARCHAR', 'genres': 'VARCHAR'}
)
